"""Voice conversion on the real chatterbox-tts `ChatterboxVC`, with the full-size random S3Gen meanflow decoder
that tests/engines/checkpoints.py writes for Turbo, through the real loading code and the HTTP routes.

Random weights say nothing about the words (no Whisper WER here): what is checked is that the output is as
long as the recording in every format, that the target voice is encoded once, and that a client that hangs
up frees the engine."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.conftest import LiveServer, decode, make_settings, start_server, wait_until_idle
from tts_studio.audio.encode import FORMATS
from tts_studio.engines import chatterbox_vc_engine

VOICES = Path(__file__).resolve().parents[2] / "voices"
RATE = 24000


def recording(seconds: float) -> bytes:
    """Real speech (the bundled clips, made with the embedded engine), `seconds` long, as WAV."""
    lark, _ = sf.read(VOICES / "lark.flac", dtype="float32")
    heart, _ = sf.read(VOICES / "heart.flac", dtype="float32")
    speech = np.concatenate([lark, np.zeros(RATE // 4, np.float32), heart, lark])[: int(seconds * RATE)]
    buf = io.BytesIO()
    sf.write(buf, speech, RATE, format="WAV")
    return buf.getvalue()


@pytest.fixture(scope="module")
def studio(checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("vc"),
        engine_dirs={"chatterbox-vc": checkpoints["chatterbox-turbo"], "hibari-vc": checkpoints["chatterbox-turbo"]},
        allow_downloads=False,
        watermark=False,
    )
    live = start_server(settings)
    yield live
    live.stop()


def convert(live: LiveServer, audio: bytes, fmt: str, voice: str = "bundled_dusk", **fields: Any) -> httpx.Response:
    return httpx.post(
        f"{live.base_url}/audio/voice-conversion",
        data={"voice": voice, "response_format": fmt, **fields},
        files={"audio": ("speech.wav", audio, "audio/wav")},
        timeout=300,
    )


def test_ten_seconds_come_back_ten_seconds_long(studio: LiveServer) -> None:
    response = convert(studio, recording(10.0), "wav")
    assert response.status_code == 200, response.text
    samples, rate = decode(response.content, "wav")
    assert len(samples) / rate == pytest.approx(10.0, rel=0.1)
    assert np.abs(samples).max() > 0  # sound, not silence


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "wav"])
def test_every_format_keeps_the_length(studio: LiveServer, fmt: str) -> None:
    """A shorter clip per format (the 10 s clip above covers wav): the length survives each encoder."""
    response = convert(studio, recording(2.0), fmt, steps="1")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == FORMATS[fmt].mime
    samples, rate = decode(response.content, fmt)
    assert len(samples) / rate == pytest.approx(2.0, rel=0.1)


def test_elevenlabs_route_and_the_voice_is_encoded_once(studio: LiveServer) -> None:
    response = httpx.post(
        f"{studio.base_url}/speech-to-speech/bundled_dusk",
        params={"output_format": "pcm_16000"},
        data={"model_id": "eleven_multilingual_sts_v2"},
        files={"audio": ("speech.wav", recording(2.0), "audio/wav")},
        timeout=300,
    )
    assert response.status_code == 200, response.text
    assert len(response.content) / 2 / 16000 == pytest.approx(2.0, rel=0.1)
    with studio.app.state.manager.lease("chatterbox-vc") as lease:
        assert lease.engine.encoded == 1  # every conversion into bundled_dusk used one conditioning


def test_a_client_that_hangs_up_frees_the_engine(studio: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chatterbox_vc_engine, "PIECE_SECONDS", 2.0)  # 8 s: four pieces, streamed one by one
    with httpx.stream(
        "POST",
        f"{studio.base_url}/audio/voice-conversion",
        data={"voice": "alloy", "response_format": "pcm", "steps": "1"},
        files={"audio": ("speech.wav", recording(8.0), "audio/wav")},
        timeout=300,
    ) as response:
        assert response.status_code == 200
        first = next(response.iter_bytes())
        assert first
    health = wait_until_idle(studio, timeout=120)
    assert health["active_requests"] == 0
    assert not health["engines"]["chatterbox-vc"]["in_use"]


def test_hibari_vc_speaks_a_library_voice_at_hibaris_length(studio: LiveServer) -> None:
    """The CPU clone without a token: hibari speaks, the decoder re-voices; the timing stays hibari's."""
    client = studio.client(max_retries=0)
    text = "The boats rocked gently in the harbor."
    cloned = client.audio.speech.create(
        model="hibari-vc", voice="bundled_dusk", input=text, response_format="pcm", extra_body={"seed": 3, "steps": 1}
    ).content
    plain = client.audio.speech.create(
        model="hibari", voice="heart", input=text, response_format="pcm", extra_body={"seed": 3}
    ).content
    assert len(cloned) / 48000 == pytest.approx(len(plain) / 48000, rel=0.1)
    models = {m.id for m in client.models.list().data}
    assert "hibari-vc" in models and "chatterbox-vc" not in models  # its own id; the converter speaks no text
