"""Text that arrives in pieces (an LLM writing its reply), read by the speech pipeline as engine chunks as
soon as each sentence is complete, the first one sooner, so speech starts while the rest is written."""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterator

from tts_studio.text import chunk_text, split_long, split_sentences

_ENDS_SENTENCE = re.compile(r"[.!?…。！？][\"'”’)\]]*$")  # noqa: RUF001 (CJK full stops are meant literally)


class FeedCancelled(Exception):
    """The reply was cancelled while the pipeline waited for text."""


class TextFeed:
    """Thread-safe: the event loop `write()`s deltas and `end()`s; the synthesis thread iterates chunks.

    `taken` lists the chunks handed to the engine, in order (what is spoken: the transcript)."""

    def __init__(self, max_chars: int = 300, first_chars: int = 60) -> None:
        self.max_chars = max_chars
        self.first_chars = first_chars
        self.taken: list[str] = []
        self.text = ""  # everything written
        self._pending = ""
        self._ready: deque[str] = deque()
        self._ended = False
        self._failure: BaseException | None = None
        self._cond = threading.Condition()

    def write(self, delta: str) -> None:
        with self._cond:
            self.text += delta
            self._pending += delta
            complete = self._complete_sentences()
            for sentence in complete:
                self._ready.extend(self._chunks(sentence))
            if complete or self._ready:
                self._cond.notify_all()

    def _complete_sentences(self) -> list[str]:
        """Take the finished sentences off the pending text (the first chunk early, at a clause)."""
        text = self._pending
        sentences = split_sentences(text)
        if not sentences:
            return []
        finished = text[-1].isspace() and (text.endswith("\n") or _ENDS_SENTENCE.search(text.rstrip()) is not None)
        if finished:
            self._pending = ""
            return sentences
        complete, rest = sentences[:-1], sentences[-1]
        if not self.taken and not self._ready and not complete and len(rest) > self.first_chars:
            parts = split_long(rest, self.first_chars)  # a long first sentence: speak its first clause now
            complete, rest = parts[:-1], parts[-1]
        self._pending = rest + (" " if text[-1].isspace() else "")
        return complete

    def _chunks(self, sentence: str) -> list[str]:
        """Engine chunks of a finished sentence: only the reply's very first chunk is cut short."""
        first = not self.taken and not self._ready
        return chunk_text(sentence, self.max_chars, self.first_chars if first else self.max_chars)

    def end(self) -> None:
        """No more text: what is pending is spoken too."""
        with self._cond:
            if self._pending.strip():
                self._ready.extend(self._chunks(self._pending))
            self._pending = ""
            self._ended = True
            self._cond.notify_all()

    def fail(self, exc: BaseException) -> None:
        """The text source failed: the reader raises `exc` (before any chunk: the caller's error)."""
        with self._cond:
            self._failure = exc
            self._cond.notify_all()

    @property
    def ready(self) -> int:
        """Chunks complete and not yet taken."""
        with self._cond:
            return len(self._ready)

    def cancel(self) -> None:
        self.fail(FeedCancelled("cancelled"))

    def __iter__(self) -> Iterator[str]:
        while True:
            with self._cond:
                while not self._ready and not self._ended and self._failure is None:
                    self._cond.wait()
                if self._failure is not None:
                    raise self._failure
                if not self._ready:
                    return
                chunk = self._ready.popleft()
                self.taken.append(chunk)
            yield chunk
