"""The Ray Serve mode's configuration, without Ray: which engines an ingress serves remotely and which it
refuses (saying how to add them), how the manager schedules a remote engine (no device, no turns here), the
deployment options each engine gets, the settings an engine node runs with, the `ray_*` settings from the
environment, and `serve --ray`'s refusals before it touches any cluster."""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import SecretStr, ValidationError

from tests.conftest import make_settings
from tts_studio import cli
from tts_studio.cluster import launch
from tts_studio.cluster.deploy import engine_options, engine_settings, remote_registry
from tts_studio.config import Settings, explain_invalid
from tts_studio.engines import manager as manager_module
from tts_studio.engines.base import AudioChunk, EngineInfo, SynthesisRequest
from tts_studio.engines.manager import ModelManager
from tts_studio.engines.registry import default_registry
from tts_studio.engines.scheduler import Hold
from tts_studio.errors import EngineUnavailable

RAY_INSTALLED = importlib.util.find_spec("ray") is not None


class TinyEngine:
    """Stands in for what a remote engine's factory builds (a handle on a Serve deployment needs Ray): the
    subject here is how the manager schedules it, not what it says."""

    def __init__(self, info: EngineInfo, devices: list[str]) -> None:
        self.info = info
        self.devices = devices  # every device load() was given

    def load(self, device: str) -> None:
        self.devices.append(device)

    def unload(self) -> None:
        pass

    def stream(self, request: SynthesisRequest) -> Iterator[AudioChunk]:
        yield AudioChunk(np.zeros(240, dtype=np.float32), self.info.sample_rate)


def tiny_factory(info: EngineInfo, devices: list[str]) -> Callable[[Settings], TinyEngine]:
    return lambda settings: TinyEngine(info, devices)


# -- remote_registry ---------------------------------------------------------------------------------------


def test_deployed_engines_are_remote_and_the_others_absent(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, ray_engines=["hibari", "chatterbox"])
    registry = remote_registry(settings)
    assert set(registry) == set(default_registry())  # every engine is listed, deployed or not
    for engine_id in ("hibari", "chatterbox"):
        spec = registry[engine_id]
        assert spec.remote and not spec.absent
        assert spec.installed  # though chatterbox is not installed on this machine: it runs on the cluster
        assert spec.requires == ()
        assert spec.info == default_registry()[engine_id].info
    for engine_id in set(registry) - {"hibari", "chatterbox"}:
        spec = registry[engine_id]
        assert spec.absent and not spec.remote
        assert not spec.installed
        assert f"--engines hibari,chatterbox,{engine_id}" in spec.install_hint, spec.install_hint


def test_the_embedded_engine_is_absent_when_not_deployed(tmp_path: Path) -> None:
    """hibari is installed in this venv: absent means not part of the deployment, whatever is importable."""
    registry = remote_registry(make_settings(tmp_path, ray_engines=["pocket"]))
    assert importlib.util.find_spec("hibari") is not None
    assert registry["hibari"].absent and not registry["hibari"].installed
    assert "--engines pocket,hibari" in registry["hibari"].install_hint
    assert registry["pocket"].remote and registry["pocket"].installed


@pytest.mark.skipif(importlib.util.find_spec("chatterbox") is not None, reason="chatterbox is installed here")
def test_acquiring_an_absent_engine_says_how_to_add_it(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, ray_engines=["hibari"], allow_downloads=False)
    registry = remote_registry(settings)
    manager = ModelManager(registry, settings)
    with pytest.raises(EngineUnavailable) as caught:
        manager.acquire("chatterbox")
    assert registry["chatterbox"].install_hint in caught.value.message
    assert "--engines hibari,chatterbox" in caught.value.message
    status = manager.status()["chatterbox"]
    assert status["installed"] is False and status["state"] == "unloaded" and status["device"] is None
    assert not manager.is_loaded("chatterbox") and manager.in_use("chatterbox") == 0


def test_an_absent_engine_is_refused_even_when_its_package_is_here(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, ray_engines=["pocket"], allow_downloads=False)
    registry = remote_registry(settings)
    devices: list[str] = []
    spec = registry["hibari"]
    registry["hibari"] = replace(spec, factory=tiny_factory(spec.info, devices))  # still absent: records a load
    manager = ModelManager(registry, settings)
    try:
        with pytest.raises(EngineUnavailable) as caught:
            manager.acquire("hibari").release()
        assert spec.install_hint in caught.value.message
        assert devices == []  # nothing was built or loaded on the ingress
    finally:
        manager.unload_all()


# -- the manager with a remote engine -------------------------------------------------------------------------


@pytest.mark.parametrize("engine_id", ["hibari", "chatterbox"])  # a CPU and a GPU engine
def test_a_remote_engine_takes_no_device_turn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine_id: str) -> None:
    def no_device(*args: Any) -> str:
        raise AssertionError("a remote engine picked a local device")

    monkeypatch.setattr(manager_module, "pick_device", no_device)
    settings = make_settings(tmp_path, ray_engines=[engine_id], allow_downloads=False, queue_wait_seconds=1)
    registry = remote_registry(settings)
    devices: list[str] = []
    spec = registry[engine_id]
    registry[engine_id] = replace(spec, factory=tiny_factory(spec.info, devices))  # still remote
    manager = ModelManager(registry, settings)
    try:
        first = manager.acquire(engine_id)
        second = manager.acquire(engine_id)
        assert first.hold is Hold.NONE and second.hold is Hold.NONE
        assert devices == ["ray"]  # loaded once (a handle), on no device of this machine
        with first.turn():
            assert not first.queue.in_use  # the turn took nothing from the queue ...
            with second.turn():  # ... so another stream of the same engine goes on at the same time
                assert not second.queue.in_use
        assert first.queue.waiting == 0
        status = manager.status()[engine_id]
        assert status["device"] == "ray" and status["state"] == "loaded" and status["installed"] is True
        assert status["in_use"] == 2 and status["queued"] == 0
        first.release()
        second.release()
        assert manager.in_use(engine_id) == 0
    finally:
        manager.unload_all()


def test_a_local_engine_still_takes_its_turn(tmp_path: Path) -> None:
    """The counterpart of the test above: the same engine, not remote, holds its queue for each piece."""
    settings = make_settings(tmp_path)
    registry = default_registry()
    devices: list[str] = []
    registry["hibari"] = replace(registry["hibari"], factory=tiny_factory(registry["hibari"].info, devices))
    manager = ModelManager(registry, settings)
    try:
        with manager.lease("hibari") as lease:
            assert lease.hold is Hold.PIECE and devices == ["cpu"]
            with lease.turn():
                assert lease.queue.in_use
            assert not lease.queue.in_use
    finally:
        manager.unload_all()


def test_a_remote_gpu_engine_evicts_nothing(tmp_path: Path) -> None:
    """Remote GPU engines do not count against max_gpu_engines here: two load side by side."""
    settings = make_settings(tmp_path, ray_engines=["chatterbox", "chatterbox-turbo"], max_gpu_engines=1)
    registry = remote_registry(settings)
    devices: list[str] = []
    for engine_id in ("chatterbox", "chatterbox-turbo"):
        registry[engine_id] = replace(registry[engine_id], factory=tiny_factory(registry[engine_id].info, devices))
    manager = ModelManager(registry, settings)
    try:
        manager.acquire("chatterbox").release()
        manager.acquire("chatterbox-turbo").release()
        assert manager.is_loaded("chatterbox") and manager.is_loaded("chatterbox-turbo")
        assert devices == ["ray", "ray"]
    finally:
        manager.unload_all()


# -- engine_options -----------------------------------------------------------------------------------------


def test_a_cpu_engine_gets_one_cpu_and_one_replica(tmp_path: Path) -> None:
    info = default_registry()["hibari"].info
    assert not info.gpu
    options = engine_options(make_settings(tmp_path), info)
    assert options == {
        "name": "engine-hibari",
        "ray_actor_options": {"num_cpus": 1.0, "num_gpus": 0.0, "resources": {}},
        "max_ongoing_requests": 2,
        "max_queued_requests": 16,
        "num_replicas": 1,
    }


def test_a_gpu_engine_gets_a_gpu_and_scales_to_zero(tmp_path: Path) -> None:
    info = default_registry()["chatterbox"].info
    assert info.gpu
    options = engine_options(make_settings(tmp_path), info)
    assert options["name"] == "engine-chatterbox"
    assert options["ray_actor_options"] == {"num_cpus": 0.0, "num_gpus": 1.0, "resources": {}}
    assert options["max_ongoing_requests"] == 4 and options["max_queued_requests"] == 16
    assert "num_replicas" not in options
    scaling = options["autoscaling_config"]
    assert (scaling["min_replicas"], scaling["max_replicas"], scaling["initial_replicas"]) == (0, 1, 1)
    assert scaling["downscale_to_zero_delay_s"] == 300
    assert scaling["target_ongoing_requests"] == 2.0


def test_explicit_options_win(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        ray_engine_options={
            "hibari": {"num_cpus": 0.5, "resources": {"gpu_standin": 1}, "min_replicas": 2, "max_replicas": 2},
            "chatterbox": {
                "num_gpus": 0.5,
                "min_replicas": 1,
                "max_replicas": 3,
                "max_ongoing_requests": 8,
                "max_queued_requests": -1,
                "downscale_to_zero_delay_s": 60,
            },
        },
    )
    registry = default_registry()
    cpu = engine_options(settings, registry["hibari"].info)
    assert cpu["ray_actor_options"] == {"num_cpus": 0.5, "num_gpus": 0.0, "resources": {"gpu_standin": 1.0}}
    assert cpu["num_replicas"] == 2 and "autoscaling_config" not in cpu  # min == max: a fixed count
    gpu = engine_options(settings, registry["chatterbox"].info)
    assert gpu["ray_actor_options"] == {"num_cpus": 0.0, "num_gpus": 0.5, "resources": {}}
    assert gpu["max_ongoing_requests"] == 8 and gpu["max_queued_requests"] == -1
    assert gpu["autoscaling_config"] == {
        "min_replicas": 1,
        "max_replicas": 3,
        "initial_replicas": 1,
        "target_ongoing_requests": 4.0,
        "downscale_to_zero_delay_s": 60.0,
    }
    # an engine without options keeps its kind's defaults
    assert engine_options(settings, registry["pocket"].info)["ray_actor_options"]["num_cpus"] == 1.0


def test_a_gpu_engine_put_on_cpus_gets_a_cpu(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, ray_engine_options={"chatterbox": {"num_gpus": 0}})
    options = engine_options(settings, default_registry()["chatterbox"].info)
    assert options["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 0.0, "resources": {}}


def test_a_minimum_above_the_maximum_is_a_fixed_count(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, ray_engine_options={"hibari": {"min_replicas": 3}})
    options = engine_options(settings, default_registry()["hibari"].info)
    assert options["num_replicas"] == 3 and "autoscaling_config" not in options


# -- engine_settings ----------------------------------------------------------------------------------------


@pytest.fixture
def no_studio_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No TTS_STUDIO_* variable and no .env file reach Settings() (monkeypatch restores both)."""
    for name in list(os.environ):
        if name.startswith("TTS_STUDIO_"):
            monkeypatch.delenv(name)
    home = tmp_path / "cwd"
    home.mkdir()
    monkeypatch.chdir(home)
    return home


def test_engine_nodes_keep_what_was_set_but_their_own_folders_and_no_key(tmp_path: Path, no_studio_env: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    settings = make_settings(
        tmp_path,
        api_key="sk-cluster",
        hf_token="hf_secret",
        engine_dirs={"chatterbox": checkpoints},
        bundled_voices_dir=tmp_path / "voices",
        ray_engines=["hibari", "chatterbox"],
        idle_unload_seconds=30,
        watermark=False,
    )
    node = engine_settings(settings)
    assert node.key is None  # the studio's key stays with the ingress
    assert isinstance(node.hf_token, SecretStr) and node.hf_token.get_secret_value() == "hf_secret"
    assert node.engine_dirs == {"chatterbox": checkpoints}
    assert node.ray_engines == ["hibari", "chatterbox"] and node.watermark is False
    assert node.idle_unload_seconds == -1  # autoscaling, not idle unloads, decides when a replica goes
    defaults = Settings()
    for name in ("data_dir", "cache_dir", "log_dir", "bundled_voices_dir"):
        assert getattr(node, name) == getattr(defaults, name), name  # the node's own, not the deployer's
        assert getattr(node, name) != getattr(settings, name), name


def test_engine_nodes_without_settings_of_note_get_defaults(tmp_path: Path, no_studio_env: Path) -> None:
    node = engine_settings(make_settings(tmp_path))
    assert node.api_key is None and node.engine_dirs == {} and node.idle_unload_seconds == -1


# -- Settings from the environment ----------------------------------------------------------------------------


def test_ray_settings_from_the_environment(no_studio_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_STUDIO_RAY_ENGINES", '["hibari","pocket"]')
    monkeypatch.setenv(
        "TTS_STUDIO_RAY_ENGINE_OPTIONS", '{"hibari": {"num_cpus": 0.5, "resources": {"gpu_standin": 1}}}'
    )
    monkeypatch.setenv("TTS_STUDIO_RAY_SPEECH_REPLICAS", "3")
    settings = Settings()
    assert settings.ray_engines == ["hibari", "pocket"]
    assert set(settings.ray_engine_options) == {"hibari"}
    hibari = settings.ray_engine_options["hibari"]
    assert hibari.num_cpus == 0.5 and hibari.resources == {"gpu_standin": 1.0}
    assert hibari.num_gpus is None and hibari.min_replicas is None and hibari.max_replicas == 1
    assert settings.ray_speech_replicas == 3 and settings.ray_whisper_replicas == 1
    options = engine_options(settings, default_registry()["hibari"].info)
    assert options["ray_actor_options"] == {"num_cpus": 0.5, "num_gpus": 0.0, "resources": {"gpu_standin": 1.0}}


def test_ray_defaults(no_studio_env: Path) -> None:
    settings = Settings()
    assert settings.ray_engines == ["hibari"] and settings.ray_engine_options == {}
    assert settings.ray_speech_replicas == 2 and settings.ray_whisper_replicas == 1


@pytest.mark.parametrize(
    "options",
    [
        {"chatterbox": {"num_gpus": -1}},
        {"chatterbox": {"num_cpus": -0.5}},
        {"hibari": {"max_replicas": 0}},
        {"hibari": {"max_queued_requests": -2}},
    ],
)
def test_impossible_ray_options_are_refused(
    no_studio_env: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, Any]
) -> None:
    monkeypatch.setenv("TTS_STUDIO_RAY_ENGINE_OPTIONS", json.dumps(options))
    with pytest.raises(ValidationError) as caught:
        Settings()
    (error,) = caught.value.errors()
    assert error["loc"][0] == "ray_engine_options"
    assert explain_invalid(caught.value).startswith("invalid setting: TTS_STUDIO_RAY_ENGINE_OPTIONS")


def test_replica_counts_below_one_are_refused(no_studio_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_STUDIO_RAY_WHISPER_REPLICAS", "0")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert "TTS_STUDIO_RAY_WHISPER_REPLICAS='0'" in explain_invalid(caught.value)


# -- serve --ray ----------------------------------------------------------------------------------------------


@pytest.fixture
def ray_cli(tmp_path: Path, no_studio_env: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., int]:
    """`cli.main` with the studio's folders in tmp_path, no logging set up, and no way to reach a cluster."""
    monkeypatch.setenv("TTS_STUDIO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TTS_STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TTS_STUDIO_LOG_DIR", str(tmp_path / "log"))
    monkeypatch.setattr(cli, "setup_logging", lambda settings: None)  # root handlers and a log file: not here
    reached = threading.Event()

    def refused(*args: Any) -> None:
        reached.set()
        raise AssertionError("serve --ray went on to the cluster")

    monkeypatch.setattr(launch, "connect", refused)
    monkeypatch.setattr(launch, "deploy", refused)
    monkeypatch.setattr(cli, "serve", refused)  # never the single-process server either

    def run(*argv: str) -> int:
        code = cli.main(list(argv))
        assert not reached.is_set()
        return code

    return run


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_serve_on_ray_needs_an_api_key(ray_cli: Callable[..., int], capsys: pytest.CaptureFixture[str]) -> None:
    assert ray_cli("serve", "--ray") == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("tts-studio: ") and "TTS_STUDIO_API_KEY" in line and "--api-key-file" in line


def test_serve_on_ray_with_an_address_needs_an_api_key_too(
    ray_cli: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert ray_cli("serve", "--ray", "10.0.0.1:6379", "--engines", "hibari") == 2
    assert "TTS_STUDIO_API_KEY" in _one_line(capsys.readouterr().err)


@pytest.mark.skipif(RAY_INSTALLED, reason="Ray is installed here")
def test_serve_on_ray_without_ray_says_how_to_install_it(
    ray_cli: Callable[..., int], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTS_STUDIO_API_KEY", "sk-cluster")
    assert ray_cli("serve", "--ray") == 2
    line = _one_line(capsys.readouterr().err)
    assert "pip install 'tts-studio[ray]'" in line and "sk-cluster" not in line


def test_serve_on_ray_names_an_unknown_engine(
    ray_cli: Callable[..., int], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTS_STUDIO_API_KEY", "sk-cluster")
    assert ray_cli("serve", "--ray", "--engines", "hibari,nope") == 2
    line = _one_line(capsys.readouterr().err)
    assert "unknown engines: nope" in line


def test_serve_on_ray_with_bad_ray_options_names_the_variable(
    ray_cli: Callable[..., int], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTS_STUDIO_API_KEY", "sk-cluster")
    monkeypatch.setenv("TTS_STUDIO_RAY_ENGINE_OPTIONS", '{"chatterbox": {"num_gpus": -1}}')
    assert ray_cli("serve", "--ray", "--engines", "chatterbox") == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("tts-studio: invalid setting: TTS_STUDIO_RAY_ENGINE_OPTIONS")
    assert "greater than or equal to 0" in line and "sk-cluster" not in line


# -- deploy/serve.yaml (`serve deploy`) ------------------------------------------------------------------------


def test_the_serve_config_builds_both_applications_settings(no_studio_env: Path, tmp_path: Path) -> None:
    import yaml

    from tts_studio.cluster import deploy

    config = yaml.safe_load((Path(__file__).parent.parent / "deploy" / "serve.yaml").read_text(encoding="utf-8"))
    apps = {app["name"]: app for app in config["applications"]}
    assert {apps[deploy.APP]["route_prefix"], apps[deploy.SPEECH_APP]["route_prefix"]} == {"/", deploy.SPEECH_PREFIX}
    assert config["proxy_location"] == "HeadOnly"
    for app in apps.values():
        module, _, name = app["import_path"].partition(":")
        assert module == "tts_studio.cluster.deploy" and callable(getattr(deploy, name))
        key = tmp_path / "key"
        key.write_text("sk-from-config\n", encoding="utf-8")
        settings = deploy.config_settings({**app["args"], "api_key_file": str(key), "data_dir": str(tmp_path)})
        deploy.check_engines(settings)
        assert settings.key == "sk-from-config" and settings.port == config["http_options"]["port"]


def test_the_serve_config_builders_refuse_to_run_without_a_key(no_studio_env: Path, tmp_path: Path) -> None:
    from tts_studio.cluster.deploy import config_settings

    with pytest.raises(ValueError, match="needs an API key"):
        config_settings({"data_dir": str(tmp_path)})
