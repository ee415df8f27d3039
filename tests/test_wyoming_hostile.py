"""The Wyoming server against hostile and broken clients: malformed events, unbounded text and audio, clients
that never read, clients that reset. Each must be answered (an `error` event) or dropped, and nothing (slot,
lease, thread, buffer) may outlive the connection."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event, async_read_event, read_event
from wyoming.info import Describe
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from tests.conftest import LiveServer, _free_port, wait_until_idle

TEXT = "The quick brown fox jumps over the lazy dog near the river bank."
DESCRIBE = b'{"type": "describe"}\n'


@pytest.fixture
def studio(live_server: Callable[..., LiveServer]) -> tuple[LiveServer, int]:
    port = _free_port()
    return live_server(wyoming_port=port), port


def _event(kind: str, data: Any = None, *, payload: bytes = b"", raw_data: bytes | None = None) -> bytes:
    """One event on the wire, exactly as given (the `wyoming` writer cannot write malformed ones)."""
    header: dict[str, Any] = {"type": kind}
    if data is not None:
        header["data"] = data
    if raw_data is not None:
        header["data_length"] = len(raw_data)
    if payload:
        header["payload_length"] = len(payload)
    return json.dumps(header).encode() + b"\n" + (raw_data or b"") + payload


async def _next(reader: asyncio.StreamReader) -> Event:
    event = await asyncio.wait_for(async_read_event(reader), 60)
    assert event is not None, "the server closed the connection"
    return event


async def _until(reader: asyncio.StreamReader, *types: str) -> list[Event]:
    events = [await _next(reader)]
    while events[-1].type not in types:
        events.append(await _next(reader))
    return events


def _health(live: LiveServer) -> dict[str, Any]:
    health: dict[str, Any] = httpx.get(f"{live.url}/health").json()
    return health


def _idle(health: dict[str, Any]) -> bool:
    engines = health["engines"].values()
    return health["active_requests"] == 0 and not any(e["in_use"] or e["queued"] for e in engines)


def _wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a crashed or killed client does."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# -- malformed events: an `error` event each, and the connection goes on ------------------------------------
SURROGATE_TEXT = b'{"type": "synthesize", "data": {"text": "Hello \\ud800 there."}}\n'
SURROGATE_VOICE = b'{"type": "synthesize", "data": {"text": "Hi.", "voice": {"name": "x\\udfff"}}}\n'
MALFORMED = {
    "data-is-a-list": _event("describe", []),
    "data-is-a-string": _event("describe", "x"),
    "data-is-null": b'{"type": "describe", "data": null}\n',
    "extra-data-is-a-list": _event("describe", raw_data=b"[1, 2]"),
    "extra-data-not-json": _event("describe", raw_data=b"{nope"),
    "not-json": b"hello there\n",
    "blank-line": b"\n",
    "invalid-utf8": b'{"type": "synthesize", "data": {"text": "\xff\xfe"}}\n',
    "header-is-a-list": b"[1, 2]\n",
    "deeply-nested": b"[" * 20_000 + b"]" * 20_000 + b"\n",  # under 64 KiB: the parser refuses it
    "no-type": b'{"data": {}}\n',
    "type-is-a-number": b'{"type": 5}\n',
    "data-length-is-a-string": b'{"type": "describe", "data_length": "ten"}\n',
    "payload-length-negative": b'{"type": "describe", "payload_length": -4}\n',
    "data-over-1-mib": _event("describe", raw_data=b'{"pad": "' + b"a" * 2**21 + b'"}'),
    "header-over-64-kib": b'{"type": "describe", "pad": "' + b"a" * 200_000 + b'"}\n',
    "voice-is-a-string": _event("synthesize", {"text": "Hi.", "voice": "nova"}),
    "voice-name-is-a-number": _event("synthesize", {"text": "Hi.", "voice": {"name": 5}}),
    "text-missing": _event("synthesize", {}),
    "text-is-a-number": _event("synthesize", {"text": 5}),
    "text-is-a-list": _event("synthesize", {"text": ["Hi."]}),
    "text-lone-surrogate": SURROGATE_TEXT,
    "voice-lone-surrogate": SURROGATE_VOICE,
    "chunk-without-start": _event("synthesize-chunk", {"text": "Hi."}),
    "stop-without-start": _event("synthesize-stop"),
    "chunk-text-missing": _event("synthesize-start") + _event("synthesize-chunk", {}),
    "transcribe-language-is-a-list": _event("transcribe", {"language": ["en"]}),
    "audio-start-rate-is-a-string": _event("audio-start", {"rate": "16000", "width": 2, "channels": 1}),
    "audio-start-without-format": _event("audio-start", {}),
    "audio-start-zero-channels": _event("audio-start", {"rate": 16000, "width": 2, "channels": 0}),
    "audio-start-32-bit": _event("audio-start", {"rate": 16000, "width": 4, "channels": 1}),
    "audio-chunk-format-differs": _event("audio-start", {"rate": 16000, "width": 2, "channels": 1})
    + _event("audio-chunk", {"rate": 22050, "width": 2, "channels": 1}, payload=b"\x00\x01" * 8),
    "audio-chunk-without-format": _event("audio-chunk", {}, payload=b"\x00\x01" * 8),
}


@pytest.mark.parametrize("wire", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_event_is_an_error_event_and_the_connection_lives(
    studio: tuple[LiveServer, int], wire: bytes
) -> None:
    async def go() -> list[Event]:
        reader, writer = await asyncio.open_connection("127.0.0.1", studio[1])
        try:
            writer.write(wire + DESCRIBE)
            await writer.drain()
            return await _until(reader, "info")
        finally:
            writer.close()

    events = asyncio.run(go())
    assert [e.type for e in events] == ["error", "info"]  # answered, not served, and the next event works
    assert Error.from_event(events[0]).code not in {None, "internal"}  # a client's mistake, not a studio crash


# -- text: bounded -----------------------------------------------------------------------------------------
def test_streamed_text_without_a_sentence_end_is_spoken_at_the_input_limit(
    live_server: Callable[..., LiveServer],
) -> None:
    port = _free_port()
    live_server(wyoming_port=port, max_input_chars=200)
    words = "one two three four five six seven eight nine ten " * 8  # 400 characters, no sentence end

    async def go() -> tuple[list[Event], list[Event]]:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="alloy")).event())
            for start in range(0, len(words), 40):
                await client.write_event(SynthesizeChunk(text=words[start : start + 40]).event())
            await client.write_event(Describe().event())  # answered after what the chunks made the studio do
            early = []
            while (event := await asyncio.wait_for(client.read_event(), 60)) is not None and event.type != "info":
                early.append(event)
            await client.write_event(SynthesizeStop().event())
            rest = []
            while (event := await asyncio.wait_for(client.read_event(), 60)) is not None:
                rest.append(event)
                if event.type == "synthesize-stopped":
                    break
            return early, rest

    early, rest = asyncio.run(go())
    assert "audio-chunk" in [e.type for e in early]  # spoken before the text ended: nothing grows unbounded
    events = early + rest
    assert [e.type for e in events].count("audio-start") == 1 and [e.type for e in events].count("audio-stop") == 1
    assert "error" not in [e.type for e in events] and events[-1].type == "synthesize-stopped"
    start = AudioStart.from_event(events[0])
    audio = b"".join(AudioChunk.from_event(e).audio for e in events if AudioChunk.is_type(e.type))
    seconds = len(audio) / (start.rate * start.width * start.channels)
    assert len(words.split()) / 4.5 < seconds < len(words.split()) / 1.2  # every word once, none twice


def test_a_synthesize_over_the_input_limit_is_an_error_before_any_audio(
    live_server: Callable[..., LiveServer],
) -> None:
    port = _free_port()
    live_server(wyoming_port=port, max_input_chars=100)

    async def go() -> list[Event]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(_event("synthesize", {"text": "word " * 100}) + DESCRIBE)
            return await _until(reader, "info")
        finally:
            writer.close()

    events = asyncio.run(go())
    assert [e.type for e in events] == ["error", "info"]
    assert Error.from_event(events[0]).code == "string_above_max_length"


# -- audio to transcribe: bounded --------------------------------------------------------------------------
def test_audio_to_transcribe_is_bounded_and_over_the_bound_is_an_error(studio: tuple[LiveServer, int]) -> None:
    """4 x 64 MiB audio-chunks and no audio-stop: one `error`, nothing held (the process RSS barely moves)."""
    payload = b"\x00\x01" * (32 * 1024 * 1024)  # 64 MiB, allocated before the baseline
    fmt = {"rate": 16000, "width": 2, "channels": 1}
    header = json.dumps({"type": "audio-chunk", "data": fmt, "payload_length": len(payload)}).encode() + b"\n"
    before = _rss()
    with socket.create_connection(("127.0.0.1", studio[1]), timeout=120) as sock:
        sock.sendall(_event("transcribe", {"language": "en"}))
        sock.sendall(_event("audio-start", fmt))
        for _ in range(4):
            sock.sendall(header)
            sock.sendall(memoryview(payload))  # no copy on the client side
        sock.sendall(DESCRIBE)
        stream = sock.makefile("rb")
        events = [read_event(stream), read_event(stream)]
        grown = _rss() - before  # measured while the connection is still open
    assert [e.type if e else None for e in events] == ["error", "info"]
    assert events[0] is not None and Error.from_event(events[0]).code == "request_too_large"
    assert grown < 48 * 1024 * 1024, f"the process grew by {grown / 2**20:.0f} MiB"


# -- clients that never read, and clients that reset -------------------------------------------------------
def test_a_client_that_never_reads_is_dropped_and_frees_its_slot(live_server: Callable[..., LiveServer]) -> None:
    port = _free_port()
    live = live_server(wyoming_port=port, client_stall_seconds=2, max_active_requests=1)
    text = "The quick brown fox jumps over the lazy dog near the river bank, again and again. " * 45
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server's writes block
        sock.connect(("127.0.0.1", port))
        sock.sendall(_event("synthesize", {"text": text[:4000]}))
        assert _wait_for(lambda: _health(live)["active_requests"] == 1)  # it is being served
        # it reads nothing: within the stall limit its slot and engine are given back while it is connected
        assert _wait_for(lambda: _idle(_health(live)), timeout=120), _health(live)
        sock.settimeout(60)  # and the server has dropped it: what is buffered ends in EOF or a reset
        ended = False
        try:
            while sock.recv(65536):
                pass
            ended = True
        except ConnectionResetError:
            ended = True
        assert ended

    async def again() -> list[Event]:  # the one slot serves the next client
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize(text="Hi there.").event())
            events = []
            while (event := await asyncio.wait_for(client.read_event(), 60)) is not None:
                events.append(event)
                if event.type in ("audio-stop", "error"):
                    return events
            return events

    assert asyncio.run(again())[-1].type == "audio-stop"


def test_clients_that_reset_after_the_first_audio_leave_nothing_behind(studio: tuple[LiveServer, int]) -> None:
    live, port = studio

    async def one(index: int, first: list[str]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(_event("synthesize", {"text": TEXT * 3, "voice": {"name": "alloy"}}))
            await writer.drain()
            events = await _until(reader, "audio-chunk", "error")
            first.append(events[-1].type)
        finally:
            _reset(writer)

    async def storm() -> list[str]:
        first: list[str] = []
        await asyncio.gather(*(one(i, first) for i in range(50)))
        return first

    async def warm() -> None:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize(text="Warm up.").event())
            while (event := await asyncio.wait_for(client.read_event(), 60)) is not None:
                if event.type == "audio-stop":
                    return

    asyncio.run(warm())  # the engine is loaded, the studio's own threads are up
    assert _idle(wait_until_idle(live))
    baseline = threading.active_count()
    first = asyncio.run(storm())
    assert "audio-chunk" in first and len(first) == 50  # some were served (the rest got a 429 error event)
    assert _wait_for(lambda: _idle(_health(live)), timeout=60), _health(live)
    assert _wait_for(lambda: threading.active_count() <= baseline, timeout=60), (
        f"{threading.active_count() - baseline} threads left: {sorted(t.name for t in threading.enumerate())}"
    )
