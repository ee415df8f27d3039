"""The embedded engine with hooks, for what it cannot do by itself: speak other words than asked (a take
that fails verification), and stop at a given line until the test lets it go (restart and cancel mid-render);
and Whisper held mid-check (a take finishing after a delete).
The audio is always the embedded engine's own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from tts_studio.audio.decode import DecodedAudio
from tts_studio.engines.base import AudioChunk, SynthesisRequest
from tts_studio.engines.hibari_engine import HIBARI_INFO, HibariEngine
from tts_studio.engines.registry import EngineSpec, default_registry
from tts_studio.engines.scheduler import Priority
from tts_studio.services.transcription import Transcriber, Transcript


@dataclass
class Hooks:
    wrong_text: str | None = None  # speak this instead of the request's text
    wrong_when: str = ""  # ... only for requests containing this (empty: all)
    gate_when: str | None = None  # wait on `release` for requests containing this
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    spoken: list[str] = field(default_factory=list)  # every request's text, in order


class HookedHibari(HibariEngine):
    def __init__(self, hooks: Hooks) -> None:
        super().__init__(1, None)
        self.hooks = hooks

    def stream(self, request: SynthesisRequest) -> Iterator[AudioChunk]:
        hooks = self.hooks
        hooks.spoken.append(request.text)
        if hooks.gate_when is not None and hooks.gate_when in request.text:
            hooks.entered.set()
            assert hooks.release.wait(60)
        if hooks.wrong_text is not None and hooks.wrong_when in request.text:
            request = replace(request, text=hooks.wrong_text)
        yield from super().stream(request)


def hooked_registry(hooks: Hooks, engine_id: str = "hooked", tags: tuple[str, ...] = ()) -> dict[str, EngineSpec]:
    registry = default_registry()
    info = replace(HIBARI_INFO, id=engine_id, name="hibari with test hooks", tags=tags)
    registry[engine_id] = EngineSpec(info, lambda settings: HookedHibari(hooks), requires=("hibari",))
    return registry


class GatedTranscriber(Transcriber):
    """The renderer's Whisper, held at its first check until the test lets it go (a take mid-verification)."""

    def __init__(self, inner: Transcriber) -> None:
        super().__init__()
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def transcribe(
        self,
        audio: DecodedAudio,
        language: str | None = "en",
        prompt: str | None = None,
        temperature: float = 0.0,
        word_timestamps: bool = False,
        priority: Priority = Priority.INTERACTIVE,
    ) -> Transcript:
        self.entered.set()
        assert self.release.wait(60)
        return self.inner.transcribe(audio, language, prompt, temperature, word_timestamps, priority)
