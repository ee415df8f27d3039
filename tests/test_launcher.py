"""start.sh from a fresh copy of the repository: first run installs and serves, second run reuses the venv."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import _free_port
from tests.ui_helpers import ARTIFACTS

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def fresh_copy(dest: Path) -> Path:
    """The files a clone would have (tracked, plus new files git does not ignore)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def launch_until_ready(repo: Path, port: int, env: dict[str, str], limit: float) -> float:
    started = time.monotonic()
    proc = subprocess.Popen(["bash", "start.sh", "--no-browser", "--port", str(port)], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        while time.monotonic() - started < limit:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError(f"not ready within {limit} s")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_readme_commands_in_order(tmp_path: Path, installer: str) -> None:
    """The README's two commands on one fresh checkout: `./start.sh` (first and second run to a ready
    /health), stop, then `bash tests/run.sh` sets up its test venv on the venv start.sh made."""
    repo = fresh_copy(tmp_path / "repo")
    data = tmp_path / "user"
    env = {**os.environ, "TTS_STUDIO_DATA_DIR": str(data / "data"), "TTS_STUDIO_CACHE_DIR": str(data / "cache"),
           "TTS_STUDIO_LOG_DIR": str(data / "log"), "XDG_STATE_HOME": str(data / "state")}  # fmt: skip
    env.pop("VIRTUAL_ENV", None)
    if installer == "pip":  # no uv anywhere: plain venv + pip in both commands
        env["TTS_STUDIO_NO_UV"] = "1"
        env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not (Path(p) / "uv").exists())
    port = _free_port()
    first = launch_until_ready(repo, port, env, limit=900)
    assert (repo / ".venv" / ".tts-studio-stamp").exists()
    assert (data / "state" / "TTSStudio" / "log" / "install.log").exists()
    has_pip = subprocess.run([repo / ".venv/bin/python", "-m", "pip", "--version"], capture_output=True).returncode == 0
    assert has_pip == (installer == "pip")  # uv venvs have no pip: tests/run.sh must cope
    second = launch_until_ready(repo, port, env, limit=120)
    setup = subprocess.run(["bash", "tests/run.sh"], cwd=repo, env={**env, "TTS_STUDIO_SETUP_ONLY": "1"},
                           capture_output=True, text=True, timeout=900)  # fmt: skip
    assert setup.returncode == 0, setup.stdout[-2000:] + setup.stderr[-2000:]
    assert (repo / ".venv" / "bin" / "pytest").exists()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"launcher-{installer}.json").write_text(json.dumps({"first_run_s": first, "second_run_s": second}))
    print(f"\nlauncher ({installer}): first run {first:.1f} s to ready, second run {second:.1f} s")
