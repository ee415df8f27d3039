"""Keeps the UI page local under every Gradio 6 release: some (6.8.0, which chatterbox-tts pins) put a
cdnjs script and Google-font preconnects into their page. This middleware removes any tag that would
make the browser contact another host from the HTML pages under /ui; the page's CSP is the backstop."""

from __future__ import annotations

import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_OUTSIDE_TAGS = re.compile(
    rb"<script\b[^>]*\bsrc=[\"']?(?:https?:)?//[^>]*>\s*</script>"  # external scripts
    rb"|<link\b[^>]*\bhref=[\"']?(?:https?:)?//[^>]*>",  # preconnects, stylesheets, fonts elsewhere
    re.I,
)


def scrub(html: bytes) -> bytes:
    """`html` without tags that load or pre-connect to other hosts."""
    return _OUTSIDE_TAGS.sub(b"", html)


class OfflinePage:
    """ASGI middleware: HTML responses under `prefix` leave without outside-loading tags."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == self.prefix or path.startswith(self.prefix + "/")):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = bytearray()

        async def buffering(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if MutableHeaders(scope=message).get("content-type", "").startswith("text/html"):
                    start = message
                    return
                await send(message)
            elif message["type"] == "http.response.body" and start is not None:
                body.extend(message.get("body", b""))
                if message.get("more_body", False):
                    return
                page = scrub(bytes(body))
                headers = MutableHeaders(scope=start)
                headers["content-length"] = str(len(page))
                await send(start)
                await send({"type": "http.response.body", "body": page})
            else:
                await send(message)

        await self.app(scope, receive, buffering)
