"""Clients that hang up early free everything at once, on every front door: 24 clients that leave before or
during the first audio leave no admission slot, no lease and no queue behind within 5 s, the next request is
served, and the studio still stops on SIGTERM. (The one speech job owns this: services/job.py.)"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from websockets.sync.client import connect as ws_connect

from tests.conftest import PARAGRAPH, LiveServer, _free_port, make_settings, wait_until_idle
from tts_studio.app import create_app

CLIENTS = 24
LONG = " ".join([PARAGRAPH] * 12)  # about a minute of speech: still speaking when the clients leave


def _idle(live: LiveServer) -> None:
    health = wait_until_idle(live, timeout=20.0)  # well inside client_stall_seconds (60): freed by the hang-up
    assert health["active_requests"] == 0
    for engine in health["engines"].values():
        assert engine["in_use"] == 0 and engine["queued"] == 0


def _raw_post(live: LiveServer, path: str, body: dict[str, Any], read_first: bool) -> None:
    """POST `body` and hang up: at once (before any audio), or after the first bytes of the body."""
    data = json.dumps(body).encode()
    host, port = live.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(head.encode() + data)
        if read_first:
            received = b""
            while b"\r\n\r\n" not in received or len(received.split(b"\r\n\r\n", 1)[1]) == 0:
                more = sock.recv(4096)
                if not more:
                    break
                received += more
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST


def _crowd(action: Callable[[], None]) -> None:
    threads = [threading.Thread(target=action) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _served(live: LiveServer) -> None:
    reply = httpx.post(f"{live.base_url}/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": "Next."},
                       timeout=60)  # fmt: skip
    assert reply.status_code == 200 and reply.content


BODIES: dict[str, tuple[str, dict[str, Any]]] = {
    "speech-audio": ("/v1/audio/speech", {"model": "tts-1", "voice": "alloy", "input": LONG[:4000]}),
    "speech-sse": ("/v1/audio/speech", {"model": "tts-1", "voice": "alloy", "input": LONG[:4000],
                                         "stream_format": "sse"}),
    "responses-json": ("/v1/responses", {"model": "tts-1", "input": LONG[:4000]}),
    "responses-sse": ("/v1/responses", {"model": "tts-1", "input": LONG[:4000], "stream": True}),
    "dialogue": ("/v1/audio/dialogue", {"model": "tts-1", "inputs": [{"text": LONG[:3000], "voice": "alloy"},
                                                                      {"text": LONG[:3000], "voice": "nova"}]}),
}  # fmt: skip


# A JSON body arrives whole when the speech is done: that door has no "during the audio" to hang up in.
HANG_UPS = [
    (door, read_first) for door in BODIES for read_first in (False, True) if door != "responses-json" or not read_first
]


@pytest.mark.parametrize(("door", "read_first"), HANG_UPS,
                         ids=[f"{d}-{'during' if r else 'before'}-audio" for d, r in HANG_UPS])  # fmt: skip
def test_clients_that_hang_up_free_everything(server: LiveServer, door: str, read_first: bool) -> None:
    path, body = BODIES[door]
    _crowd(lambda: _raw_post(server, path, body, read_first))
    _idle(server)
    _served(server)


async def _asgi_hang_up(app: Any, path: str, body: dict[str, Any]) -> None:
    """One request straight through the ASGI app, from a client that is gone as soon as its body is sent
    (ASGI spec 2.3, as servers before 2.4 speak it: Starlette then races the response against the
    disconnect and may cancel it before its body generator starts)."""
    data = json.dumps(body).encode()
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8600),
        "headers": [(b"host", b"127.0.0.1:8600"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode())],
    }  # fmt: skip
    messages = [{"type": "http.request", "body": data, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])  # the bytes go nowhere: the client is gone

    await app(scope, receive, send)
    assert statuses in ([], [200], [429])


def _settle(studio: Any, timeout: float = 5.0) -> None:
    """Wait (at most `timeout`) until no slot and no lease is held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (
        studio.speech_slots.active or any(e["in_use"] for e in studio.manager.status().values())
    ):
        time.sleep(0.05)


def test_responses_cancelled_before_their_body_starts_free_everything(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))

    async def go() -> None:
        async with app.router.lifespan_context(app):
            studio = app.state.services
            for door in BODIES:
                path, body = BODIES[door]
                async with anyio.create_task_group() as group:
                    for _ in range(CLIENTS):
                        group.start_soon(_asgi_hang_up, app, path, body)
                await anyio.to_thread.run_sync(_settle, studio)
                assert studio.speech_slots.active == 0, door
                assert all(e["in_use"] == 0 and e["queued"] == 0 for e in studio.manager.status().values()), door

    anyio.run(go)


def test_realtime_clients_that_abort_free_everything(server: LiveServer) -> None:
    url = server.url.replace("http://", "ws://") + "/v1/realtime?model=gpt-realtime"

    def leave(abort_after_audio: bool) -> None:
        with ws_connect(url, open_timeout=30) as ws:
            ws.recv()  # session.created
            item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": LONG[:4000]}]}
            ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
            ws.send(json.dumps({"type": "response.create"}))
            while abort_after_audio:
                event = json.loads(ws.recv(timeout=60))
                if event["type"] in ("response.output_audio.delta", "response.done", "error"):
                    break
            ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            ws.socket.close()  # TCP abort, no close frame

    for abort_after_audio in (False, True):
        _crowd(lambda: leave(abort_after_audio))  # noqa: B023 (run before the loop moves on)
        _idle(server)
    _served(server)


def test_realtime_create_and_cancel_in_one_write_answers_done(server: LiveServer) -> None:
    url = server.url.replace("http://", "ws://") + "/v1/realtime?model=gpt-realtime"
    with ws_connect(url, open_timeout=30) as ws:
        ws.recv()
        for _ in range(3):
            item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": LONG[:2000]}]}
            ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
            ws.send(json.dumps({"type": "response.create"}))
            for _ in range(200):
                ws.send(json.dumps({"type": "response.cancel", "event_id": "evt_c"}))
            kinds = []
            while not kinds or kinds[-1] != "response.done":
                event = json.loads(ws.recv(timeout=30))
                kinds.append(event["type"])
                if event["type"] == "response.done":
                    assert event["response"]["status"] == "cancelled"
    _idle(server)


def test_mcp_sessions_that_hang_up_mid_speak_free_everything(server: LiveServer, tmp_path: Path) -> None:
    saved = server.app.state.settings.data_dir / "mcp"
    before = set(saved.glob("*")) if saved.exists() else set()

    def speaking() -> None:
        deadline = time.monotonic() + 30
        while server.app.state.speech_slots.active < 1 and time.monotonic() < deadline:
            time.sleep(0.05)  # a condition polled, not a race widened

    async def speak_then_leave() -> None:
        async with anyio.create_task_group() as group:

            async def speak() -> None:
                async with Client(f"{server.url}/mcp") as client:
                    await client.call_tool("speak", {"text": LONG[:4000]})

            group.start_soon(speak)
            await anyio.to_thread.run_sync(speaking)
            group.cancel_scope.cancel()  # hang up mid-speak

    threads = [threading.Thread(target=anyio.run, args=(speak_then_leave,)) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _idle(server)
    after = set(saved.glob("*")) if saved.exists() else set()
    assert after == before  # nobody will fetch them: nothing saved


@pytest.mark.slow
def test_sigterm_ends_the_studio_after_abandoned_clients(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.update({f"TTS_STUDIO_{name}_DIR": str(tmp_path / name.lower()) for name in ("DATA", "CACHE", "LOG")})
    command = [sys.executable, "-m", "tts_studio", "serve", "--port", str(port), "--no-ui"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        live = LiveServer(None, url, None, None)  # type: ignore[arg-type]  # only its url is used
        for door in ("responses-json", "responses-sse", "speech-audio"):
            path, body = BODIES[door]
            _crowd(lambda: _raw_post(live, path, body, False))  # noqa: B023
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) is not None  # within 10 s, however those clients left
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_a_realtime_client_that_never_reads_is_let_go(live_server: Callable[..., LiveServer]) -> None:
    live = live_server(client_stall_seconds=2)
    url = live.url.replace("http://", "ws://") + "/v1/realtime?model=gpt-realtime"
    with ws_connect(url, open_timeout=30, max_queue=1) as ws:
        ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": LONG[:4000]}]}
        ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
        ws.send(json.dumps({"type": "response.create"}))
        deadline = time.monotonic() + 60  # the reply is minutes long: only letting the client go frees it
        while time.monotonic() < deadline and live.app.state.speech_slots.active == 0:
            time.sleep(0.05)
        health = wait_until_idle(live, timeout=60)
        assert health["active_requests"] == 0  # while the socket is still open
        assert all(engine["in_use"] == 0 for engine in health["engines"].values())


@pytest.mark.parametrize("door", ["speech-audio", "responses-sse"])
def test_an_http_client_that_never_reads_is_let_go(live_server: Callable[..., LiveServer], door: str) -> None:
    live = live_server(client_stall_seconds=2)
    path, body = BODIES[door]
    data = json.dumps(body).encode()
    host, port = live.url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        sock.sendall(head.encode() + data)  # and never read: the reply is minutes long
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and live.app.state.speech_slots.active == 0:
            time.sleep(0.05)
        health = wait_until_idle(live, timeout=60)
        assert health["active_requests"] == 0  # while the socket is still open
        assert all(engine["in_use"] == 0 for engine in health["engines"].values())
