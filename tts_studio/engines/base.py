"""The engine protocol: what every speech engine declares and implements."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from tts_studio.errors import InvalidRequest

Audio = npt.NDArray[np.float32]


@dataclass(frozen=True)
class AudioChunk:
    """Mono float32 samples in [-1, 1] at `sample_rate`."""

    samples: Audio
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class ParamSpec:
    """An engine parameter accepted from the request body (e.g. `seed`)."""

    name: str
    kind: type  # int, float, str or bool
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""

    def coerce(self, value: Any) -> Any:
        """The validated value, or InvalidRequest naming the parameter."""
        ok = isinstance(value, self.kind) and not (self.kind is not bool and isinstance(value, bool))
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise InvalidRequest(f"'{self.name}' must be of type {self.kind.__name__}, got {value!r}.", param=self.name)
        if self.minimum is not None and value < self.minimum:
            raise InvalidRequest(f"'{self.name}' must be >= {self.minimum}, got {value}.", param=self.name)
        if self.maximum is not None and value > self.maximum:
            raise InvalidRequest(f"'{self.name}' must be <= {self.maximum}, got {value}.", param=self.name)
        return value


@dataclass(frozen=True)
class EngineInfo:
    """What an engine can do; known without loading it."""

    id: str
    name: str
    description: str
    sample_rate: int
    voices: tuple[str, ...] = ()
    languages: tuple[str, ...] = ("en",)
    speed_range: tuple[float, float] | None = None  # native speed control; None = time-stretch only
    streaming: bool = True
    cloning: bool = False
    instructions: bool = False
    gpu: bool = False
    exclusive_stream: bool = False  # keeps per-stream state: hold the device for the whole stream
    converts_audio: bool = False  # voice conversion: re-voices `SynthesisRequest.source`; speaks no text
    max_chunk_chars: int = 300
    tags: tuple[str, ...] = ()  # inline engine tags it speaks ("laugh" for "[laugh]"); others are removed
    params: tuple[ParamSpec, ...] = field(default_factory=tuple)
    weights_repo: str | None = None  # Hugging Face repo of the weights (None: shipped in a package)
    weights_files: tuple[str, ...] | None = None  # allow-patterns within the repo (None: all)

    def validate_params(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Engine parameters found in `raw`, validated; keys this engine does not know are ignored."""
        return {p.name: p.coerce(raw[p.name]) for p in self.params if raw.get(p.name) is not None}


@dataclass(frozen=True)
class VoiceReference:
    """What a cloning engine needs: the reference audio, its transcript and where to cache conditioning."""

    voice_id: str
    audio_path: Path
    sample_rate: int
    transcript: str | None
    language: str
    content_hash: str
    cache_dir: Path = field(compare=False)
    duration: float = 0.0  # seconds

    def cache_path(self, engine_id: str, suffix: str = ".pt") -> Path:
        """Per-engine cache file; new audio (a new content hash) means a new file."""
        return self.cache_dir / f"{engine_id}-{self.content_hash[:16]}{suffix}"


@dataclass(frozen=True)
class SynthesisRequest:
    """One piece of text for an engine to speak."""

    text: str
    voice: str
    speed: float = 1.0  # already within info.speed_range (or 1.0)
    language: str = "en"
    instructions: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    reference: VoiceReference | None = None  # set when the voice is cloned from reference audio
    source: AudioChunk | None = None  # the recording to re-voice (voice-conversion engines)


@runtime_checkable
class TTSEngine(Protocol):
    """A speech engine. Methods are synchronous; the model manager owns threads and locks."""

    info: EngineInfo

    def load(self, device: str) -> None:
        """Load weights onto `device`. Heavy imports happen here, never at module import."""

    def unload(self) -> None:
        """Free the weights (and device memory)."""

    def stream(self, request: SynthesisRequest) -> Iterator[AudioChunk]:
        """Yield audio for `request.text` as it is produced."""
