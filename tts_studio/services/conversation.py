"""Spoken replies for Responses, Realtime and the Talk tab: text (an LLM's streamed reply, or given text) fed
sentence by sentence into the one speech pipeline, so the first sentence is heard while the rest is written.
One lease and one admission slot per reply; nothing is held between replies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio

from tts_studio.services.job import SpeechJob, SpeechJobs
from tts_studio.services.pipeline import Progress
from tts_studio.services.speech import SpeechOrder
from tts_studio.services.text_feed import TextFeed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Transcript:
    """Text of the reply that was handed to the engine (precedes its audio)."""

    text: str


@dataclass(frozen=True)
class Audio:
    data: bytes


async def fixed_text(text: str) -> AsyncIterator[str]:
    """A text source that is already complete (a TTS model speaks the input as given)."""
    yield text


def llm_messages(instructions: str | None, turns: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Chat messages for the upstream: the instructions as a system message, then (role, text) turns."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": instructions}] if instructions else []
    return messages + [{"role": role, "content": text} for role, text in turns]


class SpokenReply:
    """Speaks `source` as it arrives, as one speech job; iterate `events()` for Transcript and Audio items,
    then `aclose()` (always: it frees the job's slot and lease and stops the source).

    Errors before any audio (unknown voice, engine unavailable, upstream down) propagate from `events()`."""

    def __init__(
        self,
        jobs: SpeechJobs,
        order: SpeechOrder,
        source: AsyncIterator[str],
        fmt: str = "pcm",
        sample_rate: int | None = None,
        spoken: bool = True,
    ) -> None:
        self.feed = TextFeed()
        self.spoken = spoken  # False: text only (Transcript items as the source writes), nothing synthesised
        self._written: list[str] = []
        self._jobs, self._order = jobs, order
        self._source, self._fmt, self._rate = source, fmt, sample_rate
        self.job: SpeechJob | None = None
        self._writer: asyncio.Task[None] | None = None
        self._cancelled = False

    @property
    def progress(self) -> Progress:
        return self.job.progress if self.job is not None else Progress()

    async def _write(self) -> None:
        try:
            async for delta in self._source:
                self.feed.write(delta)
            self.feed.end()
        except asyncio.CancelledError:
            self.feed.cancel()
            raise
        except Exception as exc:  # upstream errors reach the reader (and so the caller) as themselves
            self.feed.fail(exc)
        finally:
            await _close_source(self._source)

    async def events(self) -> AsyncGenerator[Transcript | Audio, None]:
        if not self.spoken:
            async for delta in self._source:
                if self._cancelled:
                    return
                self._written.append(delta)
                yield Transcript(delta)
            return
        if self._cancelled:
            return
        self.job = job = self._jobs.admit()  # 429 when the studio is full
        plan = await anyio.to_thread.run_sync(job.plan_feed, self._order, self.feed)
        job.start([plan], self._fmt, self._rate)
        self._writer = asyncio.create_task(self._write())
        told = 0
        while True:
            data = await job.anext()
            taken = list(self.feed.taken)
            for text in taken[told:]:
                yield Transcript(text if told == 0 else f" {text}")
                told += 1
            if data is None:
                return
            yield Audio(data)

    @property
    def spoken_text(self) -> str:
        """The reply so far: the chunks handed to the engine (text only: what the source wrote)."""
        return " ".join(self.feed.taken) if self.spoken else "".join(self._written)

    def cancel(self) -> None:
        """Stop at once (never blocks): the feed, the synthesis and the writer; `events()` ends."""
        self._cancelled = True
        self.feed.cancel()
        if self.job is not None:
            self.job.cancel()
        if self._writer is not None:
            self._writer.cancel()

    async def aclose(self) -> None:
        """Stop the text source and the synthesis (within one piece); free the lease and the slot. Idempotent."""
        with anyio.CancelScope(shield=True):
            self.cancel()
            if self._writer is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._writer
            await _close_source(self._source)  # also when the writer was cancelled before it ever ran
            if self.job is not None:
                await self.job.aclose()


async def _close_source(source: AsyncIterator[str]) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
