"""`python -m tts_studio serve` as a user runs it: busy port, then every format in both stream formats."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.conftest import LiveServer
from tts_studio.cli import find_free_port


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_find_free_port_skips_a_busy_one(busy_port: int) -> None:
    assert find_free_port("127.0.0.1", busy_port) > busy_port


@pytest.mark.slow
def test_module_serve_answers_the_sdk(busy_port: int, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TTS_STUDIO_DATA_DIR": str(tmp_path / "d"),
        "TTS_STUDIO_CACHE_DIR": str(tmp_path / "c"),
        "TTS_STUDIO_LOG_DIR": str(tmp_path / "l"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tts_studio", "serve", "--port", str(busy_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            match = re.search(r"on (http://127\.0\.0\.1:(\d+))", line)
            if match:
                url, port = match.group(1), int(match.group(2))
        assert url is not None and port != busy_port
        while not _up(url) and time.monotonic() < deadline:
            time.sleep(0.05)
        client = OpenAI(base_url=f"{url}/v1", api_key="sk-any", max_retries=0)
        for fmt in ("mp3", "opus", "aac", "flac", "wav", "pcm"):
            for stream_format in ("audio", "sse"):
                response = client.audio.speech.create(
                    model="tts-1",
                    voice="echo",
                    input="Testing one two.",
                    response_format=fmt,
                    stream_format=stream_format,
                )  # type: ignore[arg-type]
                assert len(response.content) > 1000, (fmt, stream_format)
        assert (tmp_path / "l" / "tts-studio.log").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert proc.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean shutdown


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_second_launch_only_points_at_the_running_studio(server: LiveServer) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    # a second server would keep running (and hit the timeout); this one finds the first and exits
    done = subprocess.run([sys.executable, "-m", "tts_studio", "serve", "--port", str(port)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0
    assert httpx.get(f"{server.url}/health").status_code == 200


def _cli(tmp_path: Path, *args: str, dotenv: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """The real command line in a clean folder (its own `.env`), with only these TTS_STUDIO_* variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TTS_STUDIO_")}
    if dotenv is not None:
        (tmp_path / ".env").write_text(dotenv, encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "tts_studio", *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**clean, "TTS_STUDIO_LOG_DIR": str(tmp_path / "log"), **env})  # fmt: skip


def test_empty_settings_mean_unset(tmp_path: Path) -> None:
    """`TTS_STUDIO_WYOMING_PORT=` as compose files and .env templates write it: the default, not a crash.
    `engines` builds the settings exactly as `serve` does, then exits."""
    assert _cli(tmp_path, "engines", TTS_STUDIO_WYOMING_PORT="", TTS_STUDIO_PORT="").returncode == 0
    done = _cli(tmp_path, "engines", dotenv="TTS_STUDIO_WYOMING_PORT=\nTTS_STUDIO_MAX_GPU_ENGINES=\n")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("args", "dotenv", "env", "named"),
    [
        pytest.param(("serve",), None, {"TTS_STUDIO_WYOMING_PORT": "abc"}, "TTS_STUDIO_WYOMING_PORT", id="env"),
        pytest.param(("mcp",), "TTS_STUDIO_PORT=-5\n", {}, "TTS_STUDIO_PORT", id="dotenv"),
        pytest.param(
            ("download", "chatterbox"),
            None,
            {"TTS_STUDIO_QUEUE_WAIT_SECONDS": "soon"},
            "TTS_STUDIO_QUEUE_WAIT_SECONDS",
            id="download",
        ),
        pytest.param(("serve", "--port", "70000"), None, {}, "--port", id="flag"),
    ],
)
def test_an_invalid_setting_is_one_line_and_status_2(
    tmp_path: Path, args: tuple[str, ...], dotenv: str | None, env: dict[str, str], named: str
) -> None:
    done = _cli(tmp_path, *args, dotenv=dotenv, **env)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], done.stderr
    assert done.stdout == ""
