"""`tts-studio serve --ray [ADDRESS]`: deploy the studio onto a running Ray cluster, serve it through Serve's
proxy on --host/--port until Ctrl-C (or SIGTERM), then take it down again."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any

from tts_studio.config import Settings

log = logging.getLogger("tts_studio")

START_CLUSTER = (
    "start one first, with a token (`ray get-auth-token --generate`, then RAY_AUTH_MODE=token on every host): "
    "`ray start --head --disable-usage-stats` on this machine, `ray start --address=HEAD:6379 --disable-usage-stats` "
    "on every other host, then run this again (README: Beyond one machine)"
)


def _fail(message: str) -> int:
    print(f"tts-studio: {message}", file=sys.stderr)
    return 2


def connect(address: str) -> None:
    """Join the cluster at `address` ("auto": the one this machine belongs to); usage stats off first."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray

    ray.init(
        address=address,
        logging_level=logging.WARNING,
        runtime_env={"env_vars": {"RAY_USAGE_STATS_ENABLED": "0"}},
    )


def deploy(settings: Settings) -> None:
    """Start Serve's proxy on the head node and run both applications (returns once they are running)."""
    from ray import serve
    from ray.exceptions import RayActorError

    from tts_studio.cluster.deploy import APP, SPEECH_APP, SPEECH_PREFIX, owner_application, speech_application

    owner, speech = owner_application(settings), speech_application(settings)
    for attempt in range(3):  # on a busy head node the controller may give up on a proxy still starting
        try:
            serve.start(http_options={"host": settings.host, "port": settings.port}, proxy_location="HeadOnly")
            break
        except RayActorError:
            if attempt == 2:
                raise
            log.warning("Serve's proxy did not start in time; trying again")
    serve.run(owner, name=APP, route_prefix="/")
    serve.run(speech, name=SPEECH_APP, route_prefix=SPEECH_PREFIX)


def serve_on_ray(settings: Settings, address: str) -> int:
    if settings.api_key is None:
        return _fail(
            "on Ray the studio needs an API key (Serve's proxy is reachable from the cluster's network): set "
            "TTS_STUDIO_API_KEY or pass --api-key-file FILE"
        )
    from tts_studio.cluster.deploy import check_engines

    try:
        check_engines(settings)
    except ValueError as exc:
        return _fail(str(exc))
    try:
        import ray
        from ray import serve
        from ray.exceptions import RayError
    except ImportError:
        return _fail("Ray is not installed here: pip install 'tts-studio[ray]'")
    try:
        connect(address)
    except ConnectionError as exc:
        return _fail(f"no Ray cluster at {address!r} ({exc}); {START_CLUSTER}")
    stop = threading.Event()

    def ask_to_stop(*_: Any) -> None:
        stop.set()

    try:
        try:
            deploy(settings)
        except (RuntimeError, RayError) as exc:  # a replica that cannot start: Serve says which and why
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return _fail(f"deploying on the cluster failed: {first} (Serve's log on the head node has the rest)")
        url = f"http://{settings.host}:{settings.port}"
        log.info("TTS Studio on Ray at %s (OpenAI base_url: %s/v1; the studio at %s/ui/)", url, url, url)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, ask_to_stop)
        while not stop.wait(1.0):
            pass
        log.info("Taking TTS Studio off the cluster")
    finally:
        serve.shutdown()
        ray.shutdown()
    return 0
