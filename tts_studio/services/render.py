"""Render any length of text to one audio file, in parts within the API limit, reporting progress.

Used by the UI: the text is split at sentence boundaries into parts of at most `max_input_chars`, each
part goes through the same plan/stream path as the API, and one encoder writes a single file. Closing
the generator (a cancel) stops synthesis and releases the engine at once.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, replace

from tts_studio.audio.encode import StreamEncoder
from tts_studio.errors import InvalidRequest
from tts_studio.services.speech import SpeechOrder, SpeechService
from tts_studio.text import chunk_text


@dataclass(frozen=True)
class Progress:
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


def render(speech: SpeechService, order: SpeechOrder, fmt: str) -> Generator[Progress | Rendered, None, None]:
    """Yield Progress while loading and synthesising, then one Rendered."""
    limit = speech.settings.max_input_chars
    parts = chunk_text(order.input, max_chars=limit, first_chars=limit)
    if not parts:
        raise InvalidRequest("There is nothing to speak.", param="input")
    plans = [speech.plan(replace(order, input=part)) for part in parts]
    total = sum(len(plan.chunks) for plan in plans)
    engine_id = plans[0].engine_id
    yield Progress(0, total, f"Loading {engine_id}…" if not speech.manager.is_loaded(engine_id) else "Starting…")
    started = time.perf_counter()
    encoder = StreamEncoder(fmt)
    audio, seconds, done = bytearray(), 0.0, 0
    for plan in plans:
        stream = speech.open(plan)
        try:
            chunks_seen = 0
            for chunk in stream:
                audio += encoder.write(chunk)
                seconds += chunk.duration
                if stream.chunks_done != chunks_seen:
                    done += stream.chunks_done - chunks_seen
                    chunks_seen = stream.chunks_done
                    yield Progress(done, total, f"Speaking part {done} of {total}")
        finally:
            stream.close()
    audio += encoder.close()
    yield Rendered(bytes(audio), seconds, time.perf_counter() - started, engine_id, plans[0].voice.name)
