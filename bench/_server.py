"""Start `python -m tts_studio serve` on a free port for a benchmark, as a user would run it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


@contextmanager
def running_server(tmp: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    full_env = {**os.environ, "TTS_STUDIO_DATA_DIR": str(tmp / "d"), "TTS_STUDIO_CACHE_DIR": str(tmp / "c"),
                "TTS_STUDIO_LOG_DIR": str(tmp / "l"), "TTS_STUDIO_LOG_LEVEL": "WARNING", **(env or {})}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "tts_studio", "serve", "--port", str(port)], env=full_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise RuntimeError("server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(15)
