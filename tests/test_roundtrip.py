"""Round trip: the embedded engine speaks a paragraph, the bundled Whisper tiny.en writes it back."""

from __future__ import annotations

import io
import re
from typing import Any

import jiwer
import pytest
from faster_whisper import decode_audio
from openai import OpenAI

from tests.conftest import PARAGRAPH


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]+", " ", text.lower()).split())


@pytest.mark.parametrize("fmt", ["mp3", "opus"])
def test_paragraph_round_trip_wer(client: OpenAI, whisper: Any, fmt: str) -> None:
    audio = client.audio.speech.create(model="tts-1", voice="nova", input=PARAGRAPH, response_format=fmt).content
    samples = decode_audio(io.BytesIO(audio), sampling_rate=16000)
    segments, _ = whisper.transcribe(samples, language="en", beam_size=5)
    heard = " ".join(s.text.strip() for s in segments)
    wer = jiwer.wer(_words(PARAGRAPH), _words(heard))
    assert wer <= 0.10, f"WER {wer:.2%}: {heard!r}"
