"""A real two-node Ray cluster on loopback for the Ray tests and bench/ray_bench.py: `ray start --head`, then a
second `ray start --address` with a custom resource standing in for a GPU. Run inside a network namespace that
has only `lo` (`unshare -n`): Ray's servers listen on every interface whatever address they are given."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import _free_port as free_port

GPU_STANDIN = "gpu_standin"  # the second node's custom resource: engines that ask for it run there


def isolated_network() -> bool:
    """True inside a network namespace whose only interface is loopback."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


@dataclass
class RayCluster:
    address: str
    temp_dir: Path
    env: dict[str, str]

    def ray(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        ray = Path(sys.executable).with_name("ray")
        return subprocess.run([str(ray), *args], env=self.env, check=check, capture_output=True, text=True)

    def stop(self) -> None:
        """Stop every Ray process of the cluster (raylets, GCS, workers) and remove its session files."""
        self.ray("stop", "--force", check=False)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def cluster_env(token: Path) -> dict[str, str]:
    """What every Ray process of the cluster, and its drivers, need in their environment."""
    return {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}


def start_cluster(env: Mapping[str, str], head_cpus: int = 4, gpu_node_cpus: int = 2) -> RayCluster:
    """Head plus one node holding `GPU_STANDIN`; `env` reaches every Ray process (and so every replica)."""
    temp_dir = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's unix sockets live here
    port = free_port()
    token = temp_dir / "auth_token"  # Ray's token authentication stays on, with this cluster's own token
    token.write_text(secrets.token_hex(32), encoding="utf-8")
    token.chmod(0o600)
    full_env = {**os.environ, **env, **cluster_env(token)}
    cluster = RayCluster(f"127.0.0.1:{port}", temp_dir, full_env)
    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    try:
        cluster.ray(
            "start", "--head", f"--port={port}", f"--num-cpus={head_cpus}", "--include-dashboard=false",
            f"--temp-dir={temp_dir}", *common,
        )  # fmt: skip
        cluster.ray(
            "start", f"--address={cluster.address}", f"--num-cpus={gpu_node_cpus}",
            f"--resources={json.dumps({GPU_STANDIN: 1})}", *common,
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        cluster.stop()
        raise RuntimeError(f"ray start failed: {exc.stderr[-2000:]}") from exc
    return cluster


def ray_processes() -> list[str]:
    """Command lines of Ray processes still running on this machine."""
    found = []
    for proc in Path("/proc").iterdir():
        pid = proc.name
        if not pid.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(marker in cmdline for marker in ("raylet", "gcs_server", "ray::", "default_worker.py")):
            found.append(f"{pid}: {cmdline[:120]}")
    return found
