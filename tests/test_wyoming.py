"""The built-in Wyoming server, driven by the real `wyoming` client library over TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import jiwer
import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped, SynthesizeVoice

from tests.conftest import PARAGRAPH, LiveServer, _free_port
from tts_studio.cli import wyoming_address

TEXT = "The quick brown fox jumps over the lazy dog near the river bank."


@pytest.fixture
def studio(live_server: Callable[..., LiveServer]) -> tuple[LiveServer, int]:
    port = _free_port()
    return live_server(wyoming_port=port), port


async def _until(client: AsyncTcpClient, *types: str) -> list[Event]:
    """Events up to and including the first of `types`."""
    events = []
    while True:
        event = await asyncio.wait_for(client.read_event(), 60)
        assert event is not None, "the server closed the connection"
        events.append(event)
        if event.type in types:
            return events


def _audio_seconds(events: list[Event]) -> float:
    start = next(AudioStart.from_event(e) for e in events if AudioStart.is_type(e.type))
    data = b"".join(AudioChunk.from_event(e).audio for e in events if AudioChunk.is_type(e.type))
    return len(data) / (start.rate * start.width * start.channels)


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_describe_lists_speakable_voices_and_asr(studio: tuple[LiveServer, int]) -> None:
    async def go() -> Info:
        async with AsyncTcpClient("127.0.0.1", studio[1]) as client:
            await client.write_event(Describe().event())
            return Info.from_event((await _until(client, "info"))[-1])

    info = _run(go())
    voices = {v.name: v for v in info.tts[0].voices}
    assert {"alloy", "nova", "heart"} <= set(voices) and "bundled_heart" not in voices  # no cloning engine
    assert voices["alloy"].languages == ["en"] and info.tts[0].supports_synthesize_streaming
    assert info.asr[0].models[0].languages == ["en"]


def test_synthesize_streams_audio_of_plausible_length(studio: tuple[LiveServer, int]) -> None:
    async def go() -> list[Event]:
        async with AsyncTcpClient("127.0.0.1", studio[1]) as client:
            await client.write_event(Synthesize(text=TEXT, voice=SynthesizeVoice(name="nova")).event())
            return await _until(client, "audio-stop")

    events = _run(go())
    assert events[0].type == "audio-start" and AudioStart.from_event(events[0]).rate == 24000
    assert sum(AudioChunk.is_type(e.type) for e in events) > 1  # streamed in pieces
    words = len(TEXT.split())
    assert words / 4.5 < _audio_seconds(events) < words / 1.2


def test_streaming_synthesis_speaks_sentence_by_sentence(studio: tuple[LiveServer, int]) -> None:
    chunks = ["Hello there. This is", " streamed text, sent in", " pieces. And here", " is the end."]

    async def go() -> tuple[list[Event], list[Event]]:
        async with AsyncTcpClient("127.0.0.1", studio[1]) as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="alloy")).event())
            await client.write_event(SynthesizeChunk(text=chunks[0]).event())
            await client.write_event(SynthesizeChunk(text=chunks[1]).event())
            # the first sentence is complete: its audio comes before the text is finished
            early = await _until(client, "audio-chunk")
            for chunk in chunks[2:]:
                await client.write_event(SynthesizeChunk(text=chunk).event())
            await client.write_event(Synthesize(text="".join(chunks)).event())  # for non-streaming servers: ignored
            await client.write_event(SynthesizeStop().event())
            return early, await _until(client, SynthesizeStopped().event().type)

    early, rest = _run(go())
    events = early + rest
    assert [e.type for e in events].count("audio-start") == 1 and [e.type for e in events].count("audio-stop") == 1
    assert events[-2].type == "audio-stop" and events[-1].type == "synthesize-stopped"
    words = len("".join(chunks).split())
    assert words / 4.5 < _audio_seconds(events) < words / 1.2  # spoken once, not twice


def test_transcribe_returns_the_words(studio: tuple[LiveServer, int]) -> None:
    live, port = studio
    body = {"model": "tts-1", "voice": "alloy", "input": PARAGRAPH, "response_format": "pcm"}
    pcm = httpx.post(f"{live.base_url}/audio/speech", json=body, timeout=120).content

    async def go() -> Transcript:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Transcribe(language="en").event())
            await client.write_event(AudioStart(rate=24000, width=2, channels=1).event())
            for start in range(0, len(pcm), 8192):
                await client.write_event(
                    AudioChunk(rate=24000, width=2, channels=1, audio=pcm[start : start + 8192]).event()
                )
            await client.write_event(AudioStop().event())
            return Transcript.from_event((await _until(client, "transcript"))[-1])

    transcript = _run(go())
    normalize = jiwer.Compose(
        [jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip()]
    )
    assert jiwer.wer(normalize(PARAGRAPH), normalize(transcript.text)) <= 0.1


def test_unknown_voice_is_an_error_event_and_the_connection_lives(studio: tuple[LiveServer, int]) -> None:
    async def go() -> tuple[list[Event], Event]:
        async with AsyncTcpClient("127.0.0.1", studio[1]) as client:
            await client.write_event(Synthesize(text="Hi.", voice=SynthesizeVoice(name="no-such-voice")).event())
            failed = await _until(client, "error")
            await client.write_event(Describe().event())
            return failed, (await _until(client, "info"))[-1]

    failed, info = _run(go())
    error = Error.from_event(failed[-1])
    assert "no-such-voice" in error.text and info.type == "info"


def test_three_concurrent_clients(studio: tuple[LiveServer, int]) -> None:
    async def one(voice: str) -> float:
        async with AsyncTcpClient("127.0.0.1", studio[1]) as client:
            await client.write_event(Synthesize(text=TEXT, voice=SynthesizeVoice(name=voice)).event())
            return _audio_seconds(await _until(client, "audio-stop"))

    async def go() -> list[float]:
        return list(await asyncio.gather(one("alloy"), one("echo"), one("heart")))

    lengths = _run(go())
    assert all(length > 2 for length in lengths)
    health = httpx.get(f"{studio[0].url}/health").json()
    assert health["active_requests"] == 0  # the speech admission slots were shared and given back


def test_full_admission_is_an_error_event(live_server: Callable[..., LiveServer]) -> None:
    port = _free_port()
    live = live_server(wyoming_port=port, max_active_requests=1)
    live.app.state.speech_slots.take()  # an HTTP request holds the only slot

    async def go() -> Event:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize(text="Hi.").event())
            return (await _until(client, "error"))[-1]

    assert Error.from_event(_run(go())).code == "rate_limit_exceeded"
    live.app.state.speech_slots.give_back()


def test_wyoming_address_parsing() -> None:
    assert wyoming_address("10200") == {"wyoming_port": 10200, "wyoming_host": None}
    assert wyoming_address("0.0.0.0:10200") == {"wyoming_port": 10200, "wyoming_host": "0.0.0.0"}
    assert wyoming_address("[::1]:10200") == {"wyoming_port": 10200, "wyoming_host": "::1"}
    with pytest.raises(SystemExit):
        wyoming_address("nope")


def test_a_busy_wyoming_port_does_not_stop_the_studio(live_server: Callable[..., LiveServer]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        live = live_server(wyoming_port=taken.getsockname()[1])
        assert httpx.get(f"{live.url}/health").status_code == 200
