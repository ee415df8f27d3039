"""The studio as Ray Serve applications (the layout is in README "Beyond one machine: Ray Serve"):

- `tts-studio` at `/`: the owner ingress (one replica, on the head node): every route, the UI, MCP, Realtime and
  every write to the studio's data (voices, voice map, dictionary, projects and their renders); plus one
  deployment per engine (`engine-<id>`, placed by the resources it asks for: GPUs for Chatterbox and VoxCPM)
  and `whisper`.
- `tts-studio-speech` at `/v1/audio/speech`: `ray_speech_replicas` ingress replicas (head node, sharing the
  owner's data folder read-only) for the route that carries the load.

Every ingress runs `create_app` on its replica (Serve's builder form), so auth, the Origin/Host guard, errors
and routes are the single process's own; only the engine registry and the transcriber point at deployments."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from tts_studio.cluster.remote_engine import EngineReplica, RemoteEngine
from tts_studio.cluster.remote_whisper import RemoteTranscriber, WhisperReplica
from tts_studio.config import RayEngineOptions, Settings
from tts_studio.engines.base import EngineInfo, TTSEngine
from tts_studio.engines.registry import EngineSpec, default_registry

APP = "tts-studio"
SPEECH_APP = "tts-studio-speech"
SPEECH_PREFIX = "/v1/audio/speech"
WHISPER = "whisper"
HEAD_NODE = {"node:__internal_head__": 0.001}  # Ray's own marker resource of the head node
NODE_LOCAL = ("data_dir", "cache_dir", "log_dir", "bundled_voices_dir")  # paths of the deploying machine
INGRESS_ONLY = ("api_key", "api_key_file", "chat_upstream_api_key")  # engine and Whisper nodes never need these


def engine_deployment(engine_id: str) -> str:
    return f"engine-{engine_id}"


def _remote(info: EngineInfo, settings: Settings) -> TTSEngine:
    return RemoteEngine(info, engine_deployment(info.id), APP)


def remote_registry(settings: Settings) -> dict[str, EngineSpec]:
    """Every engine: the deployed ones as remote engines, the others absent (saying how to add them)."""
    deployed = set(settings.ray_engines)
    hint = "add it to the cluster's engines (`tts-studio serve --ray --engines {}`)"
    registry = {}
    for engine_id, spec in default_registry().items():
        if engine_id in deployed:
            registry[engine_id] = replace(spec, factory=partial(_remote, spec.info), requires=(), remote=True)
        else:
            listed = ",".join([*settings.ray_engines, engine_id])
            registry[engine_id] = replace(spec, absent=True, install_hint=hint.format(listed))
    return registry


def engine_settings(settings: Settings) -> Settings:
    """Settings on an engine or Whisper node: what was set when deploying, but this node's own folders, none of
    the ingress's keys, and no idle unloads (autoscaling decides when a replica goes)."""
    skip = {*NODE_LOCAL, *INGRESS_ONLY}
    chosen = {name: getattr(settings, name) for name in settings.model_fields_set if name not in skip}
    return Settings(**{**chosen, "idle_unload_seconds": -1})


class _FullPath:
    """Serve gives an app under a route prefix that prefix as `root_path`; the studio routes full paths."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "root_path": ""}
        await self.app(scope, receive, send)


class StudioIngress:
    """An ingress replica: builds the studio's app on the replica (nothing of it is pickled)."""

    def __init__(self, settings: Settings, owner: bool, *deployments: Any) -> None:
        self.settings, self.owner = settings, owner  # `deployments`: handles; the app finds them by name

    def __serve_build_asgi_app__(self) -> ASGIApp:
        from tts_studio.app import create_app

        settings = self.settings if self.owner else self.settings.model_copy(update={"enable_ui": False})
        transcriber = RemoteTranscriber(settings, WHISPER, APP)
        app = create_app(settings, remote_registry(settings), transcriber=transcriber, owner=self.owner)
        return app if self.owner else _FullPath(app)


class _EngineNode(EngineReplica):
    def __init__(self, engine_id: str, settings: Settings) -> None:
        super().__init__(engine_id, engine_settings(settings))


class _WhisperNode(WhisperReplica):
    def __init__(self, settings: Settings) -> None:
        super().__init__(engine_settings(settings))


def engine_options(settings: Settings, info: EngineInfo) -> dict[str, Any]:
    """`serve.deployment` options for an engine: resources from its kind unless set, autoscaling between
    min and max replicas (scale to zero for GPU engines by default), a bounded queue (then 503)."""
    chosen = settings.ray_engine_options.get(info.id, RayEngineOptions())
    gpus = chosen.num_gpus if chosen.num_gpus is not None else (1.0 if info.gpu else 0.0)
    cpus = chosen.num_cpus if chosen.num_cpus is not None else (0.0 if gpus else 1.0)
    least = chosen.min_replicas if chosen.min_replicas is not None else (0 if info.gpu else 1)
    most = max(chosen.max_replicas, least, 1)
    ongoing = chosen.max_ongoing_requests or (4 if info.gpu else 2)
    options: dict[str, Any] = {
        "name": engine_deployment(info.id),
        "ray_actor_options": {"num_cpus": cpus, "num_gpus": gpus, "resources": dict(chosen.resources)},
        "max_ongoing_requests": ongoing,
        "max_queued_requests": chosen.max_queued_requests,
    }
    if least == most:
        options["num_replicas"] = most
    else:
        options["autoscaling_config"] = {
            "min_replicas": least,
            "max_replicas": most,
            "initial_replicas": max(least, 1),
            "target_ongoing_requests": max(1.0, ongoing / 2),
            "downscale_to_zero_delay_s": chosen.downscale_to_zero_delay_s,
        }
    return options


def _ingress(settings: Settings, owner: bool, *deployments: Any) -> Any:
    from ray import serve

    replicas = 1 if owner else settings.ray_speech_replicas
    ingress = serve.ingress()(StudioIngress)
    return serve.deployment(
        name="studio" if owner else "speech",
        num_replicas=replicas,
        max_ongoing_requests=256,  # the studio's own admission answers 429 first
        ray_actor_options={"num_cpus": 0, "resources": HEAD_NODE},  # the data folder is on the head node
    )(ingress).bind(settings, owner, *deployments)


def check_engines(settings: Settings) -> None:
    """ValueError naming the ids in `ray_engines` that are no engine's."""
    registry = default_registry()
    unknown = [engine_id for engine_id in settings.ray_engines if engine_id not in registry]
    if unknown:
        raise ValueError(f"ray_engines names unknown engines: {', '.join(unknown)} (known: {', '.join(registry)})")


def owner_application(settings: Settings) -> Any:
    """The `tts-studio` application: owner ingress, one deployment per engine in `ray_engines`, Whisper."""
    from ray import serve

    check_engines(settings)
    registry = default_registry()
    engines = [
        serve.deployment(**engine_options(settings, registry[engine_id].info))(_EngineNode).bind(engine_id, settings)
        for engine_id in settings.ray_engines
    ]
    whisper = serve.deployment(
        name=WHISPER,
        num_replicas=settings.ray_whisper_replicas,
        max_ongoing_requests=2,
        max_queued_requests=16,  # then 503 with Retry-After, never a hang
        ray_actor_options={"num_cpus": 1},
    )(_WhisperNode).bind(settings)
    return _ingress(settings, True, *engines, whisper)  # bound to the owner: part of this application


def speech_application(settings: Settings) -> Any:
    """The `tts-studio-speech` application: `ray_speech_replicas` ingress replicas for /v1/audio/speech."""
    return _ingress(settings, False)


def config_settings(args: dict[str, Any]) -> Settings:
    """Settings from a Serve config's `args`; a key is required (Serve's proxy is reachable from the network)."""
    settings = Settings(**args)
    if settings.api_key is None:
        raise ValueError("TTS Studio on Ray needs an API key: set api_key_file in the config's args")
    return settings


def owner_app(args: dict[str, Any]) -> Any:
    """`import_path: tts_studio.cluster.deploy:owner_app` for `serve deploy` (deploy/serve.yaml): `args` are
    settings (the environment of the Ray processes fills in the rest)."""
    return owner_application(config_settings(args))


def speech_app(args: dict[str, Any]) -> Any:
    """`import_path: tts_studio.cluster.deploy:speech_app` (deploy/serve.yaml)."""
    return speech_application(config_settings(args))
