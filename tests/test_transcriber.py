"""Whisper as a managed model: one call at a time by priority (interactive before project verification),
loaded on first use and unloaded when idle. A stand-in model forces the order with events."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import numpy as np

from tts_studio.audio.decode import DecodedAudio
from tts_studio.engines.scheduler import Priority
from tts_studio.services.transcription import ENGLISH, Transcriber

AUDIO = DecodedAudio(np.zeros(16000, np.float32), 16000, "pcm")


class GatedModel:
    """Each call records its prompt; the first one waits until `gate` is set."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.entered = threading.Event()
        self.gate = threading.Event()

    def transcribe(self, samples: Any, **options: Any) -> tuple[list[Any], Any]:
        self.order.append(options["initial_prompt"])
        if len(self.order) == 1:
            self.entered.set()
            self.gate.wait(30)
        return [], SimpleNamespace(language="en")


def _call(transcriber: Transcriber, name: str, priority: Priority) -> threading.Thread:
    thread = threading.Thread(target=transcriber.transcribe, args=(AUDIO, "en", name), kwargs={"priority": priority})
    thread.start()
    return thread


def _queued(transcriber: Transcriber, count: int) -> None:
    while transcriber.status()["queued"] < count:
        threading.Event().wait(0.01)  # a condition polled: the queue length is the event


def test_interactive_transcription_goes_before_waiting_verification() -> None:
    transcriber = Transcriber()
    model = GatedModel()
    transcriber._models[ENGLISH] = model  # the stand-in: Whisper's order of calls is what is tested
    first = _call(transcriber, "verify-1", Priority.BACKGROUND)
    assert model.entered.wait(30)
    second = _call(transcriber, "verify-2", Priority.BACKGROUND)
    _queued(transcriber, 1)
    user = _call(transcriber, "user", Priority.INTERACTIVE)
    _queued(transcriber, 2)
    model.gate.set()
    for thread in (first, second, user):
        thread.join(30)
    assert model.order == ["verify-1", "user", "verify-2"]


def test_whisper_unloads_when_idle_and_loads_again() -> None:
    transcriber = Transcriber(idle_unload_seconds=0)
    done = threading.Event()
    original = transcriber._expire

    def expire(generation: int) -> None:
        original(generation)
        done.set()

    transcriber._expire = expire  # type: ignore[method-assign]  # observe the idle unload
    transcriber.transcribe(AUDIO, "en")
    assert done.wait(30)
    assert not transcriber.loaded and transcriber.status()["in_use"] == 0
    transcriber.transcribe(AUDIO, "en")  # loads again on the next call
    transcriber.unload()
    assert not transcriber.loaded
