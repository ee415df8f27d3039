"""Streamed responses that always clean up, the one SSE writer, and a watch for clients that hang up.

Starlette may cancel a response before its body generator starts (the client left while the handler ran),
so a generator's own `finally` is not enough: `ClosingStreamingResponse` runs its `on_close` exactly once
however the response ends, and ends a response whose client reads nothing for `stall_seconds`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
from sse_starlette import ServerSentEvent
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from tts_studio.services.job import SpeechJob

T = TypeVar("T")
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_frame(payload: dict[str, Any], event: str | None = None) -> bytes:
    """One SSE frame (the one writer): optional `event:` line, compact JSON `data:`, blank line."""
    data = json.dumps(payload, separators=(",", ":"))
    return ServerSentEvent(data=data, event=event, sep="\n").encode()


async def job_bytes(job: SpeechJob, first: bytes) -> AsyncIterator[bytes]:
    """`first`, then the rest of the job's bytes."""
    if first:
        yield first
    while (data := await job.anext()) is not None:
        yield data


class ClosingStreamingResponse(StreamingResponse):
    """Streams `content`; `on_close` runs exactly once however it ends (finished, failed, client gone, never
    started), shielded from cancellation. A client that takes nothing for `stall_seconds` is let go."""

    def __init__(
        self,
        content: AsyncIterator[bytes],
        on_close: Callable[[], Awaitable[None]],
        stall_seconds: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(content, **kwargs)
        self._content = content
        self._on_close: Callable[[], Awaitable[None]] | None = on_close
        self._stall = stall_seconds

    async def close(self) -> None:
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            with anyio.CancelScope(shield=True):
                try:
                    await on_close()
                finally:
                    aclose = getattr(self._content, "aclose", None)
                    if aclose is not None:
                        await aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._stall is None:
            try:
                await super().__call__(scope, receive, send)
            finally:
                await self.close()
            return
        stall = self._stall
        sending = [0.0]  # when the send in flight began (0: none): one watchdog, not a timer per send

        async def timed_send(message: Message) -> None:
            sending[0] = time.monotonic()
            try:
                await send(message)
            finally:
                sending[0] = 0.0

        async def watchdog(scope_: anyio.CancelScope) -> None:
            while True:
                await anyio.sleep(min(1.0, stall / 4))
                if sending[0] and time.monotonic() - sending[0] > stall:
                    scope_.cancel()  # a client that never reads must not hold its job forever
                    return

        try:
            with anyio.CancelScope() as response_scope:
                watcher = asyncio.ensure_future(watchdog(response_scope))
                try:
                    await super().__call__(scope, receive, timed_send)
                finally:
                    watcher.cancel()
        finally:
            await self.close()


def job_response(job: SpeechJob, content: AsyncIterator[bytes], **kwargs: Any) -> ClosingStreamingResponse:
    """A streamed response over `job`'s output that closes the job however it ends."""
    return ClosingStreamingResponse(content, job.aclose, job.speech.settings.client_stall_seconds, **kwargs)


async def until_disconnected(request: Request, cancel: Callable[[], None], work: Awaitable[T]) -> T:
    """Run `work` (the handler's own wait on a job), calling `cancel` when the client hangs up meanwhile
    (the request body must already be read). A job's driver then ends within one engine piece."""

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            continue
        cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await work
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
