"""Decoding user audio (uploads, inline base64, URLs) to mono float32 with PyAV, with clear rejections."""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np

from tts_studio.engines.base import Audio
from tts_studio.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType

MAX_RATE = 48000  # references are kept at their own rate, capped here


def pcm16_to_float(data: bytes) -> np.ndarray:
    """The one PCM converter: little-endian 16-bit samples to float32 in [-1, 1) (an odd last byte dropped)."""
    return np.frombuffer(data[: len(data) // 2 * 2], "<i2").astype(np.float32) / 32768.0


@dataclass(frozen=True)
class DecodedAudio:
    samples: Audio  # mono float32
    sample_rate: int
    container: str  # the demuxer that recognised it ("wav", "mp3", "ogg", "mov,mp4,m4a,...", ...)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class AudioLimits:
    max_bytes: int = 10 * 1024 * 1024
    min_seconds: float = 1.0
    max_seconds: float = 120.0


def _wav_is_truncated(data: bytes) -> bool:
    """A RIFF/WAVE file whose `data` chunk states more bytes than the file holds (FFmpeg hides this)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return False
    offset = 12
    while offset + 8 <= len(data):
        chunk_id, size = data[offset : offset + 4], int.from_bytes(data[offset + 4 : offset + 8], "little")
        if chunk_id == b"data":
            return size not in (0, 0xFFFFFFFF) and len(data) - offset - 8 < size
        offset += 8 + size + (size & 1)
    return False


def decode_audio(data: bytes, limits: AudioLimits, param: str = "audio_sample") -> DecodedAudio:
    """Mono float32 at the file's rate (capped at 48 kHz), or a 4xx saying what is wrong with it."""
    if not data:
        raise InvalidRequest("The audio file is empty (0 bytes).", param=param, code="empty_file")
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(
            f"The audio file is {len(data)} bytes; the limit is {limits.max_bytes} bytes.", param=param
        )
    if _wav_is_truncated(data):
        raise InvalidRequest(
            "The WAV file is truncated: its header promises more audio than it holds.",
            param=param,
            code="invalid_audio",
        )
    try:
        container = av.open(io.BytesIO(data), "r")
    except (av.FFmpegError, OSError, ValueError):
        raise UnsupportedMediaType(
            "The file is not audio that can be read (wav, mp3, flac, ogg/opus, m4a/aac and webm work).",
            param=param,
            code="invalid_audio",
        ) from None
    with container:
        if not container.streams.audio:
            raise UnsupportedMediaType("The file has no audio stream.", param=param, code="invalid_audio")
        stream = container.streams.audio[0]
        rate = min(stream.rate or MAX_RATE, MAX_RATE)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        parts: list[Audio] = []
        decoded = 0
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
                decoded += frame.samples
                if decoded / (stream.rate or rate) > limits.max_seconds + 1:
                    break
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
        except (av.FFmpegError, ValueError):
            raise InvalidRequest(
                "The audio file is damaged or truncated; it could not be decoded to the end.",
                param=param,
                code="invalid_audio",
            ) from None
        name = container.format.name
        # Headers that state a length (WAV sizes, MP3 Xing/Info, MP4) reveal a cut-off file. Streamed
        # WAVs state ~24 h (0xFFFFFFFF placeholders): only plausible lengths are trusted.
        declared = container.duration / 1_000_000 if container.duration else None
    samples = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
    seconds = len(samples) / rate
    if declared is not None and declared <= 4 * limits.max_seconds and seconds < 0.9 * declared - 0.1:
        raise InvalidRequest(
            f"The audio file is truncated: its header says {declared:.1f} s but only {seconds:.1f} s is there.",
            param=param,
            code="invalid_audio",
        )
    if seconds < limits.min_seconds:
        raise InvalidRequest(
            f"The audio is {seconds:.2f} s long; at least {limits.min_seconds:g} s is needed "
            "(5-30 s of clear speech works best). A truncated file also looks like this.",
            param=param,
            code="audio_too_short",
        )
    if seconds > limits.max_seconds:
        raise InvalidRequest(
            f"The audio is longer than {limits.max_seconds:g} s; trim it (5-30 s of clear speech works best).",
            param=param,
            code="audio_too_long",
        )
    if float(np.abs(samples).max()) < 1e-3:
        raise InvalidRequest("The audio is silent.", param=param, code="audio_silent")
    return DecodedAudio(samples, rate, name)
