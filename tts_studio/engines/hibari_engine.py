"""The embedded default engine: hibari-tts, whose voice ships inside its wheel (CPU, offline)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from tts_studio.engines.base import AudioChunk, EngineInfo, ParamSpec, SynthesisRequest
from tts_studio.errors import EngineUnavailable

HIBARI_INFO = EngineInfo(
    id="hibari",
    name="Hibari (embedded)",
    description="Small English voice shipped in the hibari-tts wheel; runs offline on one CPU core.",
    sample_rate=24000,
    voices=("heart",),  # the only voice inside the wheel; the others would download from the hub
    languages=("en",),
    speed_range=(0.5, 2.0),
    streaming=True,
    max_chunk_chars=400,
    params=(ParamSpec("seed", int, None, 0, 2**32 - 1, "Fixes the noise; same seed, same audio."),),
)


class HibariEngine:
    """Wraps `hibari.Hibari`; one sentence in, one float32 array at 24 kHz out."""

    info = HIBARI_INFO

    def __init__(self, threads: int = 1) -> None:
        self._threads = threads
        self._tts: Any = None

    def load(self, device: str) -> None:
        try:
            from hibari import Hibari
        except ImportError as exc:  # pragma: no cover - the core always installs it
            raise EngineUnavailable("hibari-tts is not installed: pip install hibari-tts") from exc
        tts = Hibari(voice="heart", threads=self._threads)
        tts.g2p  # noqa: B018 - load the G2P now, not inside the first request
        self._tts = tts

    def unload(self) -> None:
        self._tts = None

    def stream(self, request: SynthesisRequest) -> Iterator[AudioChunk]:
        if self._tts is None:
            raise EngineUnavailable("The embedded engine is not loaded.")
        seed = request.params.get("seed")
        for samples in self._tts.stream(request.text, speed=request.speed, seed=seed):
            if len(samples):
                yield AudioChunk(np.asarray(samples, dtype=np.float32), HIBARI_INFO.sample_rate)


ENGINES = {"hibari": (HIBARI_INFO, lambda settings: HibariEngine(threads=settings.hibari_threads))}
