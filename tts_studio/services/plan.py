"""What a caller asks for (`SpeechOrder`) and what the service made of it (`SpeechPlan`)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tts_studio.audio.decode import DecodedAudio
from tts_studio.engines.base import AudioChunk, EngineInfo
from tts_studio.services.voices import ResolvedVoice


@dataclass(frozen=True)
class SpeechOrder:
    """What a caller asks for (already type-checked by the API schema or the UI)."""

    model: str
    input: str
    voice: str
    speed: float = 1.0
    instructions: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    voice_b64: str | None = None  # per-request cloning: inline base64 reference audio
    voice_url: str | None = None  # per-request cloning: reference audio at a public URL (opt-in)


@dataclass(frozen=True)
class SpeechPlan:
    """A validated order: which engine, voice, text chunks, speed split and parameters."""

    engine_id: str
    info: EngineInfo
    voice: ResolvedVoice
    chunks: Iterable[str]  # a tuple, or a TextFeed whose text arrives while it is spoken
    native_speed: float
    tempo: float  # residual pitch-preserving time-stretch applied after the engine
    params: dict[str, Any]
    instructions: str | None
    input_chars: int
    language: str = "en"  # the voice's language (library voices), else the engine's first
    inline_audio: DecodedAudio | None = None  # a per-request reference, written to a temp file when opened
    temp_root: Path | None = None
    source: AudioChunk | None = None  # voice conversion: the recording the engine re-voices

    @property
    def chunk_count(self) -> int:
        """Chunks known so far (all of them for fixed text)."""
        return len(self.chunks) if isinstance(self.chunks, tuple) else 0

    @property
    def input_tokens(self) -> int:
        """A rough token count (about 4 characters per token) for SSE usage."""
        return max(1, math.ceil(self.input_chars / 4))
