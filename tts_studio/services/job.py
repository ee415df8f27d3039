"""One speech job between the core and every caller: admission, the engine lease (inside the pipeline), one
driver (sync and async) and one idempotent close. Routes, SSE, Responses, Realtime, Talk, Wyoming, MCP,
projects and the UI only translate what a job gives them.

    job = jobs.admit()                      # 429 here, before anything else happens
    try:
        job.start(await job.plan(order), "mp3")
        while (data := await job.anext()) is not None: ...
    finally:
        await job.aclose()                  # frees slot, lease and temp files, on every path

`cancel()` never blocks and may come from any thread (a client gone, a `response.cancel`): the driver stops
within one engine piece. `close()` then waits for a step in flight, closes the pipeline and gives the slot
back exactly once."""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator, Sequence

import anyio

from tts_studio.engines.scheduler import Priority
from tts_studio.services.admission import RequestSlots
from tts_studio.services.conversion import ConversionOrder, plan_conversion
from tts_studio.services.pipeline import Cancellation, JobCancelled, Progress, speak
from tts_studio.services.plan import SpeechOrder, SpeechPlan
from tts_studio.services.speech import SpeechService
from tts_studio.services.text_feed import TextFeed

__all__ = ["JobCancelled", "SpeechJob", "SpeechJobs"]


class SpeechJob:
    """One request's speech, from its admission slot to its last byte. Not shared between callers."""

    def __init__(self, speech: SpeechService, slots: RequestSlots | None, priority: Priority) -> None:
        self.speech = speech
        self.priority = priority
        self.progress = Progress()
        self.engine_id: str | None = None
        self.voice: str | None = None
        self._slots = slots
        self._stop = Cancellation()
        self._step = threading.Lock()  # held by the one driver for each step; close() waits for it
        self._audio: Generator[bytes, None, None] | None = None
        self._feed: TextFeed | None = None
        self._pcm = False
        self._carry = b""  # an odd byte of pcm16 waiting for its pair
        self._finished = False
        self._closed = False
        self._close_guard = threading.Lock()

    # -- setting up ------------------------------------------------------------------------------
    async def plan(self, order: SpeechOrder | ConversionOrder) -> SpeechPlan:
        """Validate `order` off the event loop (it may decode or fetch audio); a ConversionOrder re-voices a
        recording with a voice-conversion engine."""
        if isinstance(order, ConversionOrder):
            return await anyio.to_thread.run_sync(plan_conversion, self.speech, order)
        return await anyio.to_thread.run_sync(self.speech.plan, order)

    def plan_feed(self, order: SpeechOrder, feed: TextFeed) -> SpeechPlan:
        """A plan whose text arrives while it is spoken; cancelling the job cancels the feed."""
        self._feed = feed
        return self.speech.plan_feed(order, feed)

    def start(self, plans: Sequence[SpeechPlan], fmt: str, sample_rate: int | None = None) -> None:
        """Set the pipeline up (nothing runs until the first step)."""
        if self._audio is not None:
            raise RuntimeError("a speech job starts once")
        self.engine_id, self.voice = plans[0].engine_id, plans[0].voice.name
        self._pcm = fmt == "pcm"
        self._audio = speak(
            self.speech.manager,
            plans,
            fmt,
            priority=self.priority,
            progress=self.progress,
            stop=self._stop,
            stall_seconds=self.speech.settings.client_stall_seconds,
            sample_rate=sample_rate,
        )

    # -- driving ---------------------------------------------------------------------------------
    def next(self) -> bytes | None:
        """The next non-empty bytes, or None at the end or once cancelled (blocking: off the event loop)."""
        with self._step:
            if self._audio is None or self._finished:
                return None
            if self._stop.is_set():
                self._finished = True
                return None
            try:
                while True:
                    data = next(self._audio, None)
                    if data is None:
                        self._finished = True
                        if self._carry:  # a last odd byte: pad it to a whole sample
                            data, self._carry = self._carry + b"\x00", b""
                            return data
                        return None
                    data = self._even(data)
                    if data:
                        return data
            except JobCancelled:
                self._finished = True
                return None
            except Exception:
                self._finished = True
                if self._stop.is_set():
                    return None  # whatever a cancelled pipeline raised on its way out (a cancelled feed)
                raise

    def __iter__(self) -> Iterator[bytes]:
        while (data := self.next()) is not None:
            yield data

    async def anext(self) -> bytes | None:
        """`next()` on a worker thread."""
        return await anyio.to_thread.run_sync(self.next)

    async def first(self) -> bytes:
        """The first bytes (loads the engine); errors here reach the caller with their status."""
        return await self.anext() or b""

    def _even(self, data: bytes) -> bytes:
        """pcm16 pieces carry whole samples (an even byte count)."""
        if not self._pcm:
            return data
        data = self._carry + data
        cut = len(data) - len(data) % 2
        self._carry = data[cut:]
        return data[:cut]

    # -- ending ----------------------------------------------------------------------------------
    @property
    def cancelled(self) -> bool:
        return self._stop.is_set()

    def cancel(self) -> None:
        """Stop as soon as possible (never blocks; any thread): synthesis stops within one piece."""
        self._stop.set()
        if self._feed is not None:
            self._feed.cancel()

    def close(self) -> None:
        """Stop, wait for a step in flight, free the lease and temp files, give the slot back. Idempotent."""
        self.cancel()
        with self._close_guard:
            if self._closed:
                return
            self._closed = True
        try:
            with self._step:
                audio, self._audio = self._audio, None
                if audio is not None:
                    audio.close()
        finally:
            if self._slots is not None:
                self._slots.give_back()

    async def aclose(self) -> None:
        """`close()` on a worker thread, shielded from the caller's cancellation."""
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.close)

    def __enter__(self) -> SpeechJob:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SpeechJobs:
    """Makes jobs; the one place admission happens. Background jobs (project renders) are admitted by their
    queue and take no interactive slot; the manager's device queues put them behind interactive work."""

    def __init__(self, speech: SpeechService, slots: RequestSlots) -> None:
        self.speech = speech
        self.slots = slots

    def admit(self, priority: Priority = Priority.INTERACTIVE) -> SpeechJob:
        """A new job holding an admission slot (429 when none is free), or a background job."""
        if priority is Priority.BACKGROUND:
            return SpeechJob(self.speech, None, priority)
        self.slots.take()
        return SpeechJob(self.speech, self.slots, priority)

    async def speak_all(self, order: SpeechOrder | ConversionOrder, fmt: str) -> tuple[bytes, SpeechJob]:
        """All of `order` as one encoded file, for callers that need the whole audio (MCP): admitted first,
        planned off the loop; a caller cancelled mid-way frees everything at once."""
        job = self.admit()
        try:
            job.start([await job.plan(order)], fmt)
            parts = []
            while (data := await job.anext()) is not None:
                parts.append(data)
            return b"".join(parts), job
        finally:
            await job.aclose()
