"""A request body that stalls is answered 408 and its connection closed, on every route (API, MCP, UI).

Pure ASGI, around everything that reads a body: while the body is incomplete, each `receive()` may wait at
most `timeout` seconds for the next bytes. A client that declares more bytes than it sends (Content-Length)
or stops a chunked body mid-way would otherwise hold its connection, and the handler waiting on it, forever.
At the deadline the client gets the OpenAI envelope with 408 and `Connection: close` (uvicorn then closes
the socket), and the handler's `receive()` raises `RequestTimeout`, so it unwinds like any 4xx; whatever
it sends afterwards is dropped, the client having had its answer. Nothing admits a request before its
body is complete (the routes read it first), so no slot is held while waiting."""

from __future__ import annotations

import logging

import anyio
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tts_studio.errors import StudioError

log = logging.getLogger(__name__)


class RequestTimeout(StudioError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class BodyTimeout:
    """408 for an HTTP request whose body sends nothing for `timeout` seconds."""

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        complete = False  # the last body message has arrived: receive() is only waiting for a disconnect
        started = False  # the app has begun its response: too late for a 408
        answered = False  # the 408 went out: the app's own response is dropped

        async def timed_receive() -> Message:
            nonlocal complete, answered
            if complete:
                return await receive()
            if answered:
                raise RequestTimeout(self._message())
            with anyio.move_on_after(self.timeout) as waited:
                message = await receive()
            if waited.cancelled_caught:
                if not started:
                    answered = True
                    await self._answer(scope, send)
                log.info("%s %s: the request body stalled for %g s (408)", scope["method"], scope["path"], self.timeout)
                raise RequestTimeout(self._message())
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except Exception as exc:
            if not answered:
                raise
            # The client has its 408; what the app raised while unwinding from the abandoned body (a route's
            # RequestTimeout, or a mounted app's own error around it) concerns nobody else.
            log.debug("After the 408 the app ended with %s", type(exc).__name__)

    def _message(self) -> str:
        return f"The request body stopped arriving: no bytes for {self.timeout:g} s. Send the whole body promptly."

    async def _answer(self, scope: Scope, send: Send) -> None:
        body = RequestTimeout(self._message()).body()
        response = JSONResponse(body, status_code=RequestTimeout.status, headers={"Connection": "close"})

        async def nothing() -> Message:  # the response never reads the body
            return {"type": "http.disconnect"}

        await response(scope, nothing, send)
