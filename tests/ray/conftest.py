"""The Ray group: the studio deployed by `tts_studio.cluster` onto a real two-node Ray cluster on loopback (head
plus a node with a `gpu_standin` resource, where both engines run), reached through Serve's proxy.

Runs where ray and pocket-tts are installed (`.venv-engines`), inside a network namespace with only `lo`
(`tests/run.sh` runs it under `unshare -n`). Elsewhere it is skipped, or fails with TTS_STUDIO_REQUIRE_RAY=1."""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.ray.cluster import GPU_STANDIN, RayCluster, free_port, isolated_network, ray_processes, start_cluster

# ray reads its token settings when imported: the cluster fixture sets them first, so no import here
MISSING = [name for name in ("ray", "pocket_tts") if importlib.util.find_spec(name) is None]

KEY = "sk-ray-test-key"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/ray/" in str(item.fspath):
            item.add_marker(pytest.mark.slow)


@dataclass
class RayStudio:
    """The studio on the cluster: its URL, its settings, and what tests need to watch or break it."""

    url: str
    settings: Any
    cluster: RayCluster
    node_cache: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {KEY}"}

    def engine_stats(self, engine_id: str) -> dict[str, Any]:
        """What one replica of the engine's deployment says it is doing (asked in the replica itself)."""
        from ray import serve

        from tts_studio.cluster.deploy import APP, engine_deployment

        handle = serve.get_deployment_handle(engine_deployment(engine_id), app_name=APP)
        stats: dict[str, Any] = handle.stats.remote().result(timeout_s=60)
        return stats

    def replica_actors(self, engine_id: str) -> list[Any]:
        import ray

        from tts_studio.cluster.deploy import engine_deployment

        marker = f"#{engine_deployment(engine_id)}#"
        named = ray.util.list_named_actors(all_namespaces=True)
        return [
            ray.get_actor(entry["name"], namespace=entry["namespace"])
            for entry in named
            if entry["name"].startswith("SERVE_REPLICA::") and marker in entry["name"]
        ]


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RayCluster, Path]]:
    reason = None
    if MISSING:
        reason = f"the Ray group needs {' and '.join(MISSING)} (.venv-engines has them)"
    elif not isolated_network():
        reason = "the Ray tests run in a network namespace with only loopback: `unshare -n` (tests/run.sh does)"
    if reason is not None:
        if os.environ.get("TTS_STUDIO_REQUIRE_RAY") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("ray-nodes")
    node_cache = root / "node-cache"  # the engine and Whisper replicas' own folders, not the studio's
    ray_cluster = start_cluster(
        {"TTS_STUDIO_CACHE_DIR": str(node_cache), "TTS_STUDIO_DATA_DIR": str(root / "node-data")}
    )
    try:
        os.environ.update({k: ray_cluster.env[k] for k in ("RAY_USAGE_STATS_ENABLED", "RAY_AUTH_MODE")})
        os.environ["RAY_AUTH_TOKEN_PATH"] = ray_cluster.env["RAY_AUTH_TOKEN_PATH"]
        import ray

        ray.init(address=ray_cluster.address, logging_level=logging.WARNING, log_to_driver=False)
        yield ray_cluster, node_cache
    finally:
        try:
            from ray import serve

            serve.shutdown()
            import ray

            ray.shutdown()
        finally:
            ray_cluster.stop()
    left = ray_processes()
    assert not left, f"Ray processes left running: {left}"


@pytest.fixture(scope="session")
def studio(cluster: tuple[RayCluster, Path], tmp_path_factory: pytest.TempPathFactory) -> RayStudio:
    from tests.engines.checkpoints import build_pocket
    from tts_studio.cluster.launch import deploy
    from tts_studio.config import Settings

    ray_cluster, node_cache = cluster
    root = tmp_path_factory.mktemp("ray-studio")
    port = free_port()
    settings = Settings(
        api_key=KEY,
        host="127.0.0.1",
        port=port,
        data_dir=root / "data",
        cache_dir=root / "cache",
        log_dir=root / "log",
        engine_dirs={"pocket": build_pocket(root / "pocket")},
        allow_downloads=False,
        ray_engines=["hibari", "pocket"],
        ray_engine_options={
            "hibari": {"resources": {GPU_STANDIN: 0.5}, "max_ongoing_requests": 4},
            # one stream at a time and one waiting per caller: a burst finds the deployment full
            "pocket": {"resources": {GPU_STANDIN: 0.5}, "max_ongoing_requests": 1, "max_queued_requests": 1},
        },
        ray_speech_replicas=2,
        wyoming_port=free_port(),  # Home Assistant's protocol, served by the owner replica on the head node
        wyoming_host="127.0.0.1",
        wyoming_zeroconf=False,  # no multicast from tests
    )
    deploy(settings)
    return RayStudio(f"http://127.0.0.1:{port}", settings, ray_cluster, node_cache)
