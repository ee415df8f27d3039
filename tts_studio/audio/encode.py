"""Streaming encoders for every OpenAI `response_format`, on PyAV (bundled FFmpeg, no subprocess)."""

from __future__ import annotations

from collections.abc import Generator, Iterable
from dataclasses import dataclass

import av

from tts_studio.audio.dsp import OUTPUT_RATE, Resampler
from tts_studio.engines.base import AudioChunk


@dataclass(frozen=True)
class Format:
    """How one response format is produced and labelled: the one table the API schema, the encoder, the
    UI and the docs read."""

    container: str | None  # None: raw PCM, no container
    codec: str
    mime: str
    extension: str
    bit_rate: int | None = None
    options: tuple[tuple[str, str], ...] = ()

    @property
    def playable_file(self) -> bool:
        """A file a browser or media player opens as is (raw PCM is not)."""
        return self.container is not None


FORMATS: dict[str, Format] = {
    "mp3": Format("mp3", "libmp3lame", "audio/mpeg", "mp3", 64_000, (("write_xing", "0"),)),
    "opus": Format("ogg", "libopus", "audio/opus", "ogg", 32_000, (("page_duration", "100000"),)),
    "aac": Format("adts", "aac", "audio/aac", "aac", 64_000),
    "flac": Format("flac", "flac", "audio/flac", "flac"),
    # fflags=bitexact: no LIST/INFO chunk, so the streamed header is the canonical 44 bytes
    "wav": Format("wav", "pcm_s16le", "audio/wav", "wav", None, (("fflags", "+bitexact"),)),
    "pcm": Format(None, "pcm_s16le", "audio/pcm", "pcm"),
}


class _Sink:
    """Write-only file object: without seek() the muxers write in streaming mode."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def write(self, data: bytes) -> int:
        self._buf += data
        return len(data)

    def take(self) -> bytes:
        out = bytes(self._buf)
        self._buf.clear()
        return out


class StreamEncoder:
    """Feed audio chunks, get the bytes that are ready after each; `close()` returns the tail."""

    def __init__(self, fmt: str, rate: int = OUTPUT_RATE) -> None:
        self.format = FORMATS[fmt]
        self._resampler = Resampler(rate)
        self._sink = _Sink()
        self._container: av.container.OutputContainer | None = None
        self._stream: av.audio.stream.AudioStream | None = None
        if self.format.container is not None:
            self._container = av.open(self._sink, "w", format=self.format.container, options=dict(self.format.options))
            stream = self._container.add_stream(self.format.codec, rate=rate, layout="mono")
            assert isinstance(stream, av.audio.stream.AudioStream)
            if self.format.bit_rate:
                stream.bit_rate = self.format.bit_rate
            self._stream = stream

    def _encode(self, frames: Iterable[av.AudioFrame | None]) -> bytes:
        if self._container is None:
            return b"".join(bytes(f.to_ndarray().tobytes()) for f in frames if f is not None)
        assert self._stream is not None
        for frame in frames:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        return self._sink.take()

    def write(self, chunk: AudioChunk) -> bytes:
        return self._encode(self._resampler.push(chunk))

    def close(self) -> bytes:
        data = self._encode(self._resampler.flush())
        if self._container is not None:
            data += self._encode([None])
            self._container.close()
            data += self._sink.take()
        return data


FIRST_SLICE_SECONDS = 0.1  # the first chunk is encoded in slices this long: first bytes need not wait


def encode_stream(chunks: Iterable[AudioChunk], fmt: str, rate: int = OUTPUT_RATE) -> Generator[bytes, None, None]:
    """Encoded bytes at `rate` as soon as each chunk (first: each slice) yields some; the trailer last."""
    encoder = StreamEncoder(fmt, rate)
    first = True
    source = iter(chunks)
    try:
        for chunk in source:
            step = max(1, int(chunk.sample_rate * FIRST_SLICE_SECONDS)) if first else len(chunk.samples) or 1
            first = False
            for start in range(0, len(chunk.samples), step):
                data = encoder.write(AudioChunk(chunk.samples[start : start + step], chunk.sample_rate))
                if data:
                    yield data
        tail = encoder.close()
        if tail:
            yield tail
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()  # each stage closes its input
