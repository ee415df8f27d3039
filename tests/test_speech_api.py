"""POST /v1/audio/speech through the official OpenAI SDK against the studio (in-process)."""

from __future__ import annotations

import base64
import json

import pytest
from openai import OpenAI

from tests.conftest import PARAGRAPH, InProcess, decode, duration

FORMATS = ["mp3", "opus", "aac", "flac", "wav", "pcm"]
MIME = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
TWO_SENTENCES = "The morning train was late again. Everyone waited patiently on the cold platform."


def starts_right(data: bytes, fmt: str) -> bool:
    if fmt == "mp3":
        return data[:3] == b"ID3" or (data[0] == 0xFF and data[1] & 0xE0 == 0xE0)
    if fmt == "opus":
        return data[:4] == b"OggS" and b"OpusHead" in data[:64]
    if fmt == "aac":
        return data[0] == 0xFF and data[1] in (0xF1, 0xF9)
    if fmt == "flac":
        return data[:4] == b"fLaC"
    if fmt == "wav":
        return data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    return len(data) % 2 == 0  # pcm: raw s16le


@pytest.fixture(scope="module")
def reference_seconds(app_client: InProcess) -> float:
    """Length of TWO_SENTENCES as raw 24 kHz PCM: every format must decode to the same length."""
    data = (
        app_client.sdk()
        .audio.speech.create(
            model="tts-1", voice="alloy", input=TWO_SENTENCES, response_format="pcm", extra_body={"seed": 1}
        )
        .content
    )
    return duration(data, "pcm")


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_streams_and_decodes(sdk: OpenAI, fmt: str, reference_seconds: float) -> None:
    chunks: list[bytes] = []
    with sdk.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts",
        voice="coral",
        input=TWO_SENTENCES,
        response_format=fmt,
        extra_body={"seed": 1},
    ) as response:
        assert response.headers["content-type"] == MIME[fmt]
        chunks.extend(response.iter_bytes())
    data = b"".join(chunks)
    assert starts_right(data, fmt)
    samples, rate = decode(data, fmt)
    assert rate == (48000 if fmt == "opus" else 24000)  # Opus always decodes at 48 kHz
    assert abs(len(samples) / rate - reference_seconds) < 0.15
    assert 3.0 < reference_seconds < 9.0  # 13 words at a natural pace
    assert float(abs(samples).max()) > 0.05  # not silence


def test_wav_is_streamed_with_placeholder_sizes(sdk: OpenAI) -> None:
    data = sdk.audio.speech.create(model="tts-1", voice="alloy", input="Short.", response_format="wav").content
    assert data[4:8] == b"\xff\xff\xff\xff"
    assert data.count(b"RIFF") == 1  # one header, not one per chunk
    assert int.from_bytes(data[24:28], "little") == 24000


def test_default_format_is_mp3(sdk: OpenAI) -> None:
    response = sdk.audio.speech.create(model="tts-1", voice="alloy", input="Default format.")
    assert response.response.headers["content-type"] == "audio/mpeg"
    assert starts_right(response.content, "mp3")


@pytest.mark.parametrize("fmt", FORMATS)
def test_sse_events_are_exact(app_client: InProcess, fmt: str, reference_seconds: float) -> None:
    body = {
        "model": "gpt-4o-mini-tts",
        "voice": "alloy",
        "input": TWO_SENTENCES,
        "response_format": fmt,
        "stream_format": "sse",
        "seed": 1,
    }
    with app_client.stream(
        "POST", "/v1/audio/speech", json=body, headers={"Accept": "application/octet-stream"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    frames = [f for f in raw.split("\n\n") if f]
    events = [json.loads(f.removeprefix("data: ")) for f in frames]
    assert all(f.startswith("data: ") for f in frames)
    *deltas, done = events
    assert deltas and all(set(e) == {"type", "audio"} and e["type"] == "speech.audio.delta" for e in deltas)
    assert set(done) == {"type", "usage"} and done["type"] == "speech.audio.done"
    usage = done["usage"]
    assert set(usage) == {"input_tokens", "output_tokens", "total_tokens"}
    assert all(isinstance(v, int) and v > 0 for v in usage.values())
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    audio = b"".join(base64.b64decode(e["audio"]) for e in deltas)
    assert starts_right(audio, fmt)
    assert abs(duration(audio, fmt) - reference_seconds) < 0.15


def test_sse_through_the_sdk_buffered_body(sdk: OpenAI) -> None:
    response = sdk.audio.speech.create(
        model="gpt-4o-mini-tts", voice="alloy", input="Hello.", stream_format="sse", response_format="mp3"
    )
    lines = [line for line in response.text.splitlines() if line]
    assert json.loads(lines[-1].removeprefix("data: "))["type"] == "speech.audio.done"


def test_duration_follows_the_text(sdk: OpenAI) -> None:
    short = sdk.audio.speech.create(model="tts-1", voice="alloy", input="Hi there.", response_format="pcm")
    long = sdk.audio.speech.create(model="tts-1", voice="alloy", input=PARAGRAPH, response_format="pcm")
    words = len(PARAGRAPH.split())
    seconds = duration(long.content, "pcm")
    assert words / 4.5 < seconds < words / 1.5
    assert seconds > 5 * duration(short.content, "pcm")


@pytest.mark.parametrize("speed", [0.25, 0.5, 2.0, 4.0])
def test_speed_changes_duration_on_every_range(sdk: OpenAI, speed: float) -> None:
    def seconds(s: float) -> float:
        data = sdk.audio.speech.create(
            model="tts-1",
            voice="alloy",
            input=TWO_SENTENCES,
            response_format="pcm",
            speed=s,
            extra_body={"seed": 3},
        ).content
        return duration(data, "pcm")

    ratio = seconds(1.0) / seconds(speed)
    assert ratio == pytest.approx(speed, rel=0.2)


def test_voice_object_openai_names_and_engine_voice(sdk: OpenAI) -> None:
    for voice in ("marin", "cedar", "heart"):
        data = sdk.audio.speech.create(model="tts-1-hd", voice=voice, input="Hello.", response_format="wav")
        assert data.content[:4] == b"RIFF"
    data = sdk.audio.speech.create(
        model="tts-1",
        voice={"id": "heart"},
        input="Hello.",
        response_format="wav",  # type: ignore[arg-type]
    )
    assert data.content[:4] == b"RIFF"


def test_instructions_and_unknown_extras_are_accepted(sdk: OpenAI) -> None:
    response = sdk.audio.speech.create(
        model="gpt-4o-mini-tts-2025-12-15",
        voice="alloy",
        input="Hello there.",
        instructions="Speak warmly.",
        extra_body={"some_client_extra": {"x": 1}},
    )
    assert starts_right(response.content, "mp3")


def test_seed_makes_output_repeatable(sdk: OpenAI) -> None:
    def once(seed: int) -> bytes:
        return sdk.audio.speech.create(
            model="tts-1",
            voice="alloy",
            input="Same words.",
            response_format="pcm",
            extra_body={"seed": seed},
        ).content

    assert once(7) == once(7)
    assert once(7) != once(8)


def test_input_at_the_limit_is_spoken(sdk: OpenAI) -> None:
    text = ("A calm sentence about nothing at all. " * 200)[:4096]
    assert len(text) == 4096
    with sdk.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=text, response_format="opus"
    ) as response:
        size = sum(len(c) for c in response.iter_bytes())
    assert size > 100_000
