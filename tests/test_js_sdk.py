"""The official OpenAI JS SDK (npm `openai`) against a real server: formats, SSE, error classes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import LiveServer

JS = Path(__file__).resolve().parent / "js"


@pytest.fixture(scope="module")
def node_sdk() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed for the JS SDK check (tests/run.sh installs the SDK with npm)")
    if not (JS / "node_modules" / "openai").exists():
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent", "--no-package-lock"],
            cwd=JS,
            check=True,
            timeout=300,
        )
    return Path(node)


def test_js_sdk_speaks_every_format_and_reads_errors(node_sdk: Path, server: LiveServer) -> None:
    done = subprocess.run([str(node_sdk), "sdk_check.mjs", server.base_url], cwd=JS, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {"tts-1", "tts-1-hd", "gpt-4o-mini-tts", "hibari"} <= set(report["models"])
    heads = {"mp3": "494433", "opus": "4f676753", "aac": "fff1", "flac": "664c6143", "wav": "52494646"}
    for fmt, head in heads.items():
        assert report[fmt]["status"] == 200 and report[fmt]["head"].startswith(head), (fmt, report[fmt])
    assert report["pcm"]["type"] == "audio/pcm" and report["pcm"]["bytes"] % 2 == 0
    assert report["sse"][-1] == "speech.audio.done" and set(report["sse"][:-1]) == {"speech.audio.delta"}
    assert report["bad_speed"]["className"] == "BadRequestError" and report["bad_speed"]["param"] == "speed"
    assert report["bad_model"]["className"] == "NotFoundError" and report["bad_model"]["code"] == "model_not_found"
    assert report["empty_input"]["status"] == 400 and report["empty_input"]["message"].startswith("400 ")
