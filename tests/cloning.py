"""A stand-in cloning engine for the core test venv, where the GPU cloning engines are not installed.

It plays the reference audio back, so tests can see which voice reached the engine. It never stands in
for the embedded engine; the real cloning engines have their own test group.
"""

from __future__ import annotations

from collections.abc import Iterator

import soundfile as sf

from tts_studio.engines.base import AudioChunk, EngineInfo, SynthesisRequest, VoiceReference
from tts_studio.engines.registry import EngineSpec, default_registry

INFO = EngineInfo(
    id="echo-clone", name="Echo clone (test)", description="plays the reference back", sample_rate=24000,
    cloning=True, voices=(),
)  # fmt: skip


class EchoCloneEngine:
    info = INFO

    def __init__(self) -> None:
        self.seen: list[VoiceReference] = []

    def load(self, device: str) -> None:
        pass

    def unload(self) -> None:
        pass

    def stream(self, request: SynthesisRequest) -> Iterator[AudioChunk]:
        assert request.reference is not None
        self.seen.append(request.reference)
        samples, rate = sf.read(str(request.reference.audio_path), dtype="float32")
        yield AudioChunk(samples[: rate // 2], rate)


def cloning_registry() -> dict[str, EngineSpec]:
    registry = default_registry()
    registry["echo-clone"] = EngineSpec(INFO, lambda settings: EchoCloneEngine())
    return registry
