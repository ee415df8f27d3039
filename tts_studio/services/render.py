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
from tts_studio.services.job import SpeechJobs
from tts_studio.services.speech import SpeechOrder
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


def render(jobs: SpeechJobs, order: SpeechOrder, fmt: str) -> Generator[RenderProgress | Rendered, None, None]:
    """Yield RenderProgress while loading and synthesising, then one Rendered. One admitted speech job (a 429
    when the studio is full, like any API request); closing the generator frees it at once."""
    speech = jobs.speech
    limit = speech.settings.max_input_chars
    parts = chunk_text(order.input, max_chars=limit, first_chars=limit)
    if not parts:
        raise InvalidRequest("There is nothing to speak.", param="input")
    with jobs.admit() as job:
        plans = [speech.plan(replace(order, input=part)) for part in parts]
        engine_id = plans[0].engine_id
        total = sum(plan.chunk_count for plan in plans)
        loading = not speech.manager.is_loaded(engine_id)
        yield RenderProgress(0, total, f"Loading {engine_id}…" if loading else "Starting…")
        started = time.perf_counter()
        audio, reported = bytearray(), 0
        job.start(plans, fmt)
        for data in job:
            audio += data
            if job.progress.chunks_done != reported:
                reported = job.progress.chunks_done
                yield RenderProgress(reported, total, f"Speaking part {reported} of {total}")
        seconds = job.progress.audio_seconds
    yield Rendered(bytes(audio), seconds, time.perf_counter() - started, engine_id, plans[0].voice.name)
