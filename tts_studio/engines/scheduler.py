"""Turn-taking on one device: a fair queue (FIFO within a priority, interactive before background) with a
bounded wait. No busy-polling: waiters sleep on a condition until it is their turn or their time is up."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum

from tts_studio.errors import EngineUnavailable


class Priority(IntEnum):
    """Lower runs first. API, UI and realtime requests are interactive; project renders are background."""

    INTERACTIVE = 0
    BACKGROUND = 1


class Hold(IntEnum):
    """How a lease holds its device: a turn per synthesised piece (streams interleave), the whole stream
    (engines that keep per-stream state between pieces), or no turn here (a remote engine)."""

    PIECE = 0
    STREAM = 1
    NONE = 2  # the engine schedules itself (a Ray Serve deployment: its replicas' own request limits)


def busy(device: str, waited: float) -> EngineUnavailable:
    return EngineUnavailable(
        f"The device '{device}' is busy (waited {waited:.0f} s in its queue); retry shortly.",
        code="device_busy",
        headers={"Retry-After": "5"},
    )


class DeviceQueue:
    """One device's turns. `turn()` blocks until this caller is first in line and the device is free."""

    def __init__(self, name: str, wait_limit: float | None) -> None:
        self.name = name
        self.wait_limit = wait_limit  # seconds an interactive request may wait; None: forever
        self._cond = threading.Condition()
        self._busy = False
        self._line: list[tuple[int, int]] = []  # heap of (priority, arrival)
        self._arrivals = itertools.count()
        self._closed = False

    @property
    def waiting(self) -> int:
        return len(self._line)

    @property
    def in_use(self) -> bool:
        return self._busy

    def acquire(self, priority: Priority = Priority.INTERACTIVE, wait: float | None = None) -> None:
        """Take the device; a 503 (Retry-After) when the wait exceeds `wait` (default: the queue's limit;
        background work waits as long as it takes)."""
        limit = wait if wait is not None else (None if priority is Priority.BACKGROUND else self.wait_limit)
        ticket = (int(priority), next(self._arrivals))
        started = time.monotonic()
        with self._cond:
            heapq.heappush(self._line, ticket)
            try:
                while self._closed or self._busy or self._line[0] != ticket:
                    if self._closed:
                        raise EngineUnavailable("The studio is shutting down.", code="shutting_down")
                    remaining = None if limit is None else limit - (time.monotonic() - started)
                    if remaining is not None and remaining <= 0:
                        raise busy(self.name, time.monotonic() - started)
                    self._cond.wait(remaining)
            except BaseException:
                self._line.remove(ticket)
                heapq.heapify(self._line)
                self._cond.notify_all()  # the one behind may be first now
                raise
            heapq.heappop(self._line)
            self._busy = True

    def release(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()

    def close(self) -> None:
        """Shutdown: every waiter, and every later caller, gets a 503 at once (background work included,
        which otherwise waits as long as it takes); the current holder keeps its turn."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @contextmanager
    def turn(self, priority: Priority = Priority.INTERACTIVE) -> Iterator[None]:
        self.acquire(priority)
        try:
            yield
        finally:
            self.release()
