"""The Chatterbox-server dialect on `POST /v1/audio/speech`: SSE by Accept header, `"stream": true`,
`sample_rate` for pcm/wav (resampled), `/healthz`, and OpenAI's newer model ids through the model map."""

from __future__ import annotations

import base64
import io
import json
import wave

import httpx
import pytest
from openai import OpenAI

from tests.conftest import InProcess
from tests.test_errors import assert_envelope
from tts_studio.audio.encode import FORMATS

TEXT = "Clients written for other servers work unchanged."
BODY = {"model": "tts-1", "voice": "alloy", "input": TEXT}


def _speech(studio: InProcess, headers: dict[str, str] | None = None, **body: object) -> httpx.Response:
    return studio.post("/v1/audio/speech", json={**BODY, **body}, headers=headers or {})


def _sse(response: httpx.Response) -> list[dict[str, object]]:
    return [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]


def test_accept_event_stream_gets_sse(app_client: InProcess) -> None:
    response = _speech(app_client, {"Accept": "text/event-stream"}, response_format="pcm")
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _sse(response)
    assert {e["type"] for e in events[:-1]} == {"speech.audio.delta"}
    assert events[-1]["type"] == "speech.audio.done"
    assert set(events[-1]["usage"]) == {"input_tokens", "output_tokens", "total_tokens"}  # type: ignore[arg-type]
    raw = _speech(app_client, response_format="pcm").content
    pcm = b"".join(base64.b64decode(str(e["audio"])) for e in events[:-1])
    assert abs(len(pcm) / len(raw) - 1) < 0.01  # the same audio, framed


def test_accept_octet_stream_stays_raw(app_client: InProcess) -> None:
    response = _speech(app_client, {"Accept": "application/octet-stream"}, response_format="mp3")
    assert response.headers["content-type"] == "audio/mpeg"
    explicit = _speech(app_client, {"Accept": "text/event-stream"}, response_format="mp3", stream_format="audio")
    assert explicit.headers["content-type"] == "audio/mpeg"  # an explicit stream_format wins


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_stream_true_keeps_the_content_type(app_client: InProcess, fmt: str) -> None:
    response = _speech(app_client, response_format=fmt, stream=True)
    assert response.status_code == 200
    assert response.headers["content-type"] == FORMATS[fmt].mime
    assert len(response.content) > 1000


def test_sample_rate_resamples_pcm(app_client: InProcess) -> None:
    native = _speech(app_client, response_format="pcm").content
    low = _speech(app_client, response_format="pcm", sample_rate=16000).content
    assert len(low) % 2 == 0
    assert abs(len(low) / len(native) - 16000 / 24000) < 0.01  # resampled, not cut
    events = _sse(_speech(app_client, {"Accept": "text/event-stream"}, response_format="pcm", sample_rate=16000))
    framed = b"".join(base64.b64decode(str(e["audio"])) for e in events[:-1])
    assert abs(len(framed) / len(low) - 1) < 0.01


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_sample_rate_in_the_wav_header(app_client: InProcess, rate: int) -> None:
    data = _speech(app_client, response_format="wav", sample_rate=rate).content
    native = _speech(app_client, response_format="pcm").content
    with wave.open(io.BytesIO(data[:44])) as header:
        assert header.getframerate() == rate
    frames = (len(data) - 44) // 2
    assert abs(frames / (len(native) // 2) - rate / 24000) < 0.01


@pytest.mark.parametrize("rate", [7999, 48001, 0, "fast"])
def test_sample_rate_out_of_range_is_400(app_client: InProcess, rate: object) -> None:
    response = _speech(app_client, response_format="pcm", sample_rate=rate)
    assert response.status_code == 400
    assert_envelope(response.json(), param="sample_rate")


def test_healthz_is_health(app_client: InProcess) -> None:
    healthz = app_client.get("/healthz").json()
    assert healthz["status"] == "ok" and set(healthz) == set(app_client.get("/health").json())


@pytest.mark.parametrize("model", ["gpt-realtime", "gpt-realtime-mini", "gpt-realtime-2025-08-28",
                                   "gpt-4o-mini-tts-2025-12-15", "gpt-4o-realtime-preview-2025-06-03"])  # fmt: skip
def test_newer_openai_model_ids_speak(sdk: OpenAI, model: str) -> None:
    audio = sdk.audio.speech.create(model=model, voice="alloy", input="Hello.", response_format="wav")
    assert len(audio.content) > 1000


def test_gpt_transcribe_is_accepted(sdk: OpenAI) -> None:
    audio = sdk.audio.speech.create(model="tts-1", voice="alloy", input="Good morning.", response_format="wav")
    text = sdk.audio.transcriptions.create(model="gpt-transcribe", file=("a.wav", audio.content))
    assert "morning" in text.text.lower()
