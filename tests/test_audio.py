"""PyAV encoders, resampling and time-stretch, without the server."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import decode
from tts_studio.audio.dsp import time_stretch
from tts_studio.audio.encode import FORMATS, encode_stream
from tts_studio.engines.base import AudioChunk


def tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("rate", [16000, 24000, 44100, 48000])
def test_any_engine_rate_becomes_24k_output(fmt: str, rate: int) -> None:
    parts = list(encode_stream((AudioChunk(tone(0.5, rate), rate) for _ in range(4)), fmt))
    assert len(parts) >= 3  # bytes after (almost) every chunk: progressive, not buffered
    samples, out_rate = decode(b"".join(parts), fmt)
    assert out_rate == (48000 if fmt == "opus" else 24000)
    assert len(samples) / out_rate == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize("tempo", [0.25, 0.5, 1.5, 2.0, 3.0])
def test_time_stretch_keeps_pitch(tempo: float) -> None:
    x = tone(2.0, 24000)
    y = time_stretch(x, 24000, tempo)
    assert len(y) / 24000 == pytest.approx(2.0 / tempo, rel=0.03)
    spectrum = np.abs(np.fft.rfft(y[2400:-2400]))
    peak_hz = np.argmax(spectrum) * 24000 / (len(y) - 4800)
    assert peak_hz == pytest.approx(220, rel=0.03)


def test_one_format_table_drives_schema_ui_and_files() -> None:
    from tts_studio.api.schemas import SpeechBody
    from tts_studio.ui.speak import FILE_FORMATS

    schema = SpeechBody.model_json_schema()["properties"]["response_format"]
    assert schema["enum"] == list(FORMATS)
    assert [name for name in FORMATS if name != "pcm"] == FILE_FORMATS
    assert {name: fmt.extension for name, fmt in FORMATS.items()}["opus"] == "ogg"
