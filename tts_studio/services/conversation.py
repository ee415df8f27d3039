"""Spoken replies for Responses, Realtime and the Talk tab: text (an LLM's streamed reply, or given text) fed
sentence by sentence into the one speech pipeline, so the first sentence is heard while the rest is written.
One lease and one admission slot per reply; nothing is held between replies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from typing import Any

import anyio

from tts_studio.services.admission import RequestSlots
from tts_studio.services.pipeline import Progress
from tts_studio.services.speech import SpeechOrder, SpeechService
from tts_studio.services.text_feed import TextFeed

log = logging.getLogger(__name__)
_END = object()


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
    """Speaks `source` as it arrives; iterate `events()` for Transcript and Audio items, then `aclose()`.

    Errors before any audio (unknown voice, engine unavailable, upstream down) propagate from `events()`."""

    def __init__(
        self,
        speech: SpeechService,
        slots: RequestSlots,
        order: SpeechOrder,
        source: AsyncIterator[str],
        fmt: str = "pcm",
        sample_rate: int | None = None,
        spoken: bool = True,
    ) -> None:
        self.feed = TextFeed()
        self.spoken = spoken  # False: text only (Transcript items as the source writes), nothing synthesised
        self._written: list[str] = []
        self.progress = Progress()
        self._speech, self._slots, self._order = speech, slots, order
        self._source, self._fmt, self._rate = source, fmt, sample_rate
        self._audio: Generator[bytes, None, None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._slot_held = False
        self._pcm_carry = b""

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
            with contextlib.suppress(Exception):
                await self._source.aclose()  # type: ignore[attr-defined]

    async def events(self) -> AsyncIterator[Transcript | Audio]:
        if not self.spoken:
            async for delta in self._source:
                self._written.append(delta)
                yield Transcript(delta)
            return
        plan = await anyio.to_thread.run_sync(self._speech.plan_feed, self._order, self.feed)
        self._slots.take()
        self._slot_held = True
        self._writer = asyncio.create_task(self._write())
        self._audio = self._speech.speak([plan], self._fmt, progress=self.progress, sample_rate=self._rate)
        told = 0
        while True:
            item = await anyio.to_thread.run_sync(next, self._audio, _END)
            taken = list(self.feed.taken)
            for text in taken[told:]:
                yield Transcript(text if told == 0 else f" {text}")
                told += 1
            if item is _END:
                break
            assert isinstance(item, bytes)
            data = self._even(item)
            if data:
                yield Audio(data)
        if self._pcm_carry:
            yield Audio(self._pcm_carry + b"\x00")

    def _even(self, data: bytes) -> bytes:
        """pcm16 deltas carry whole samples (an even byte count)."""
        if self._fmt != "pcm":
            return data
        data = self._pcm_carry + data
        cut = len(data) - len(data) % 2
        self._pcm_carry = data[cut:]
        return data[:cut]

    @property
    def spoken_text(self) -> str:
        """The reply so far: the chunks handed to the engine (text only: what the source wrote)."""
        return " ".join(self.feed.taken) if self.spoken else "".join(self._written)

    async def aclose(self) -> None:
        """Stop the text source and the synthesis (within one piece); free the lease and the slot."""
        if not self.spoken:
            with contextlib.suppress(Exception):
                await self._source.aclose()  # type: ignore[attr-defined]
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer
        self.feed.cancel()  # a synthesis thread waiting for text wakes up and stops
        audio, self._audio = self._audio, None
        if audio is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(audio.close)
        if self._slot_held:
            self._slot_held = False
            self._slots.give_back()
