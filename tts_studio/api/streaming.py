"""Drive a blocking byte iterator from the event loop, one `next()` per worker-thread hop."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

_END = object()


def _next(iterator: Iterator[bytes]) -> object:
    return next(iterator, _END)


async def first_item(iterator: Iterator[bytes]) -> bytes:
    """The first non-empty item, computed before the response starts so errors keep their status."""
    while True:
        item = await anyio.to_thread.run_sync(_next, iterator)
        if item is _END:
            return b""
        assert isinstance(item, bytes)
        if item:
            return item


async def _drain(first: bytes, iterator: Iterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    while True:
        # Not cancellable mid-call: a disconnect waits for this chunk, then the response closes.
        item = await anyio.to_thread.run_sync(_next, iterator)
        if item is _END:
            return
        assert isinstance(item, bytes)
        if item:
            yield item


class ClosingStreamingResponse(StreamingResponse):
    """Streams `first` then the rest of `iterator`; `on_close` runs exactly once however it ends
    (finished, failed, client gone, or never started), on a worker thread: closing a speech stream
    waits for its current piece, which must not block the event loop."""

    def __init__(self, first: bytes, iterator: Iterator[bytes], on_close: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(_drain(first, iterator), **kwargs)
        self._on_close = on_close
        self._closed = threading.Lock()

    def close(self) -> None:
        if self._closed.acquire(blocking=False):
            self._on_close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.close)
