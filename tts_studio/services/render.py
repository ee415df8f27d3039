"""Render any length of text to one audio file, in parts within the API limit, reporting progress.

Used by the UI: the text is split at sentence boundaries into parts of at most `max_input_chars`; the
parts go through the one speech pipeline as one stream (one encoder, one file). Closing the generator
(a cancel) stops synthesis and releases the engine at once.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, replace

from tts_studio.errors import InvalidRequest
from tts_studio.services.pipeline import Progress
from tts_studio.services.speech import SpeechOrder, SpeechService
from tts_studio.text import chunk_text


@dataclass(frozen=True)
class RenderProgress:
    done: int
    total: int
    message: str


@dataclass(frozen=True)
class Rendered:
    audio: bytes
    seconds: float
    elapsed: float
    engine_id: str
    voice: str


def render(speech: SpeechService, order: SpeechOrder, fmt: str) -> Generator[RenderProgress | Rendered, None, None]:
    """Yield RenderProgress while loading and synthesising, then one Rendered."""
    limit = speech.settings.max_input_chars
    parts = chunk_text(order.input, max_chars=limit, first_chars=limit)
    if not parts:
        raise InvalidRequest("There is nothing to speak.", param="input")
    plans = [speech.plan(replace(order, input=part)) for part in parts]
    engine_id = plans[0].engine_id
    progress = Progress()
    total = sum(plan.chunk_count for plan in plans)
    yield RenderProgress(0, total, f"Loading {engine_id}…" if not speech.manager.is_loaded(engine_id) else "Starting…")
    started = time.perf_counter()
    audio, reported = bytearray(), 0
    stream = speech.speak(plans, fmt, progress=progress)
    try:
        for data in stream:
            audio += data
            if progress.chunks_done != reported:
                reported = progress.chunks_done
                yield RenderProgress(reported, total, f"Speaking part {reported} of {total}")
    finally:
        stream.close()
    yield Rendered(bytes(audio), progress.audio_seconds, time.perf_counter() - started, engine_id, plans[0].voice.name)
