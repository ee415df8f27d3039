"""Sample-level processing on PyAV: pitch-preserving tempo change and resampling to the output rate."""

from __future__ import annotations

from collections.abc import Generator, Iterable
from fractions import Fraction

import av
import numpy as np

from tts_studio.engines.base import Audio, AudioChunk

OUTPUT_RATE = 24000  # the OpenAI contract: pcm is 24 kHz, and every format is encoded at this rate


def _frame(samples: Audio, sample_rate: int, pts: int | None = None) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1), format="flt", layout="mono"
    )
    frame.sample_rate = sample_rate
    frame.time_base = Fraction(1, sample_rate)
    frame.pts = pts
    return frame


def _atempo_factors(tempo: float) -> list[float]:
    """atempo takes 0.5..100 per instance; chain instances for slower tempi."""
    factors: list[float] = []
    while tempo < 0.5:
        factors.append(0.5)
        tempo /= 0.5
    factors.append(tempo)
    return factors


class Stretcher:
    """Pitch-preserving tempo change (FFmpeg atempo) over a whole stream: one filter graph keeps its
    state across chunks, so a stretched stream has no seams where the chunks meet."""

    def __init__(self, sample_rate: int, tempo: float) -> None:
        self.sample_rate = sample_rate
        self._pts = 0
        self._graph = av.filter.Graph()
        node = self._graph.add_abuffer(
            format="flt", sample_rate=sample_rate, layout="mono", time_base=Fraction(1, sample_rate)
        )
        for factor in _atempo_factors(tempo):
            nxt = self._graph.add("atempo", f"{factor:.6f}")
            node.link_to(nxt)
            node = nxt
        sink = self._graph.add("abuffersink")
        node.link_to(sink)
        self._graph.configure()

    def _pull(self) -> Audio:
        out: list[Audio] = []
        while True:
            try:
                frame = self._graph.pull()
            except (av.BlockingIOError, av.EOFError):
                break
            out.append(frame.to_ndarray().reshape(-1).astype(np.float32, copy=False))
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def push(self, samples: Audio) -> Audio:
        """The stretched audio that is ready (the filter keeps a little back until more arrives)."""
        if len(samples) == 0:
            return np.zeros(0, np.float32)
        self._graph.push(_frame(samples, self.sample_rate, self._pts))
        self._pts += len(samples)
        return self._pull()

    def flush(self) -> Audio:
        self._graph.push(None)
        return self._pull()


def time_stretch(samples: Audio, sample_rate: int, tempo: float) -> Audio:
    """A whole signal played `tempo` times faster at the same pitch."""
    if abs(tempo - 1.0) < 1e-6 or len(samples) == 0:
        return samples
    stretcher = Stretcher(sample_rate, tempo)
    return np.concatenate([stretcher.push(samples), stretcher.flush()])


def stretch_stream(chunks: Iterable[AudioChunk], tempo: float) -> Generator[AudioChunk, None, None]:
    """Every chunk through one Stretcher (identity at tempo 1)."""
    source = iter(chunks)
    try:
        if abs(tempo - 1.0) < 1e-6:
            yield from source
            return
        stretcher: Stretcher | None = None
        for chunk in source:
            if stretcher is None:
                stretcher = Stretcher(chunk.sample_rate, tempo)
            out = stretcher.push(chunk.samples)
            if len(out):
                yield AudioChunk(out, chunk.sample_rate)
        if stretcher is not None:
            tail = stretcher.flush()
            if len(tail):
                yield AudioChunk(tail, stretcher.sample_rate)
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()  # each stage closes its input


class Resampler:
    """Incremental conversion of float chunks at any rate to int16 mono at `rate`."""

    def __init__(self, rate: int = OUTPUT_RATE) -> None:
        self.rate = rate
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        self._pts = 0
        self._in_rate: int | None = None

    def push(self, chunk: AudioChunk) -> list[av.AudioFrame]:
        if self._in_rate is None:
            self._in_rate = chunk.sample_rate
        elif chunk.sample_rate != self._in_rate:
            raise ValueError("sample rate changed mid-stream")
        frame = _frame(chunk.samples.clip(-1.0, 1.0), chunk.sample_rate, self._pts)
        self._pts += len(chunk.samples)
        return list(self._resampler.resample(frame))

    def flush(self) -> list[av.AudioFrame]:
        if self._in_rate is None:
            return []
        return list(self._resampler.resample(None))


def resample(samples: Audio, rate: int, target: int) -> Audio:
    """A whole mono float32 signal at another rate."""
    if rate == target or len(samples) == 0:
        return samples
    resampler = av.AudioResampler(format="flt", layout="mono", rate=target)
    frames = [*resampler.resample(_frame(samples, rate, 0)), *resampler.resample(None)]
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32, copy=False)
