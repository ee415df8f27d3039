"""Admission control: at most N requests of a kind in flight; the rest get a 429 at once. One set of
slots per studio (in Services), shared by HTTP, Wyoming and MCP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tts_studio.errors import TooManyRequests


class RequestSlots:
    def __init__(self, limit: int, kind: str = "speech") -> None:
        self.limit = limit
        self.kind = kind
        self._active = 0
        self._lock = threading.Lock()

    @property
    def active(self) -> int:
        return self._active

    def take(self) -> None:
        """Claim a slot or raise a 429 with Retry-After."""
        with self._lock:
            if self._active >= self.limit:
                raise TooManyRequests(
                    f"Too many {self.kind} requests in flight (limit {self.limit}); retry shortly.",
                    headers={"Retry-After": "1"},
                )
            self._active += 1

    def give_back(self) -> None:
        with self._lock:
            self._active = max(0, self._active - 1)

    @contextmanager
    def held(self) -> Iterator[None]:
        """A slot for the length of the block (429 when none is free)."""
        self.take()
        try:
            yield
        finally:
            self.give_back()
