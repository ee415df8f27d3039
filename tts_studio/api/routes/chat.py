"""`POST /v1/chat/completions`: a pass-through proxy to the chat upstream (streamed frame by frame)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

from fastapi import APIRouter, Request, Response

from tts_studio.api.body import read_object
from tts_studio.api.deps import ChatDep, SettingsDep
from tts_studio.api.streaming import SSE_HEADERS, ClosingStreamingResponse
from tts_studio.services.chat import UpstreamTimeout, UpstreamUnreachable

router = APIRouter()

_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["model", "messages"],
                    "description": "Passed unchanged to the chat upstream (chat_upstream).",
                }
            }
        },
    },
    "responses": {
        "200": {
            "description": "The upstream's chat completion, or its SSE chunks with stream=true.",
            "content": {"application/json": {}, "text/event-stream": {}},
        }
    },
}


async def _relay(first: bytes, parts: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The upstream's bytes as they arrive (the response closes the upstream however it ends)."""
    try:
        if first:
            yield first
        async for part in parts:
            yield part
    except (UpstreamTimeout, UpstreamUnreachable):
        return  # the status line is gone: end the stream (the SDK sees a cut-off stream)


@router.post("/chat/completions", openapi_extra=_OPENAPI, response_model=None)
async def chat_completions(request: Request, chat: ChatDep, settings: SettingsDep) -> Response:
    raw, data = await read_object(request, settings.max_body_bytes)
    if data.get("stream") is not True:
        status, body = await chat.complete(raw)
        return Response(body, status_code=status, media_type="application/json")
    stack = AsyncExitStack()
    try:
        upstream = await stack.enter_async_context(chat.open(raw))
        parts = chat.raw_parts(upstream)
        first = await anext(parts, b"")
    except BaseException:
        await stack.aclose()
        raise
    media_type = upstream.headers.get("content-type", "text/event-stream")
    # a client gone before the body starts still closes the upstream connection (on_close runs once)
    return ClosingStreamingResponse(
        _relay(first, parts), stack.aclose, settings.client_stall_seconds, media_type=media_type, headers=SSE_HEADERS
    )
