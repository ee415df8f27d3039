"""The browser-facing guard on every route (API, UI, WebSocket): Host and Origin policy, CORS, frame and
content-security headers. Pure ASGI, outermost, so nothing runs for a refused request.

- `Host` must name this machine: a loopback name, the bound host, an `allowed_hosts` entry, or (with a
  wildcard bind) an IP literal or this machine's name. Anything else is a DNS-rebinding attempt: 403.
- A browser `Origin` must be http(s) on localhost, 127.0.0.1 or [::1] (any port), the studio's own origin, or an
  `allowed_origins` entry (`*` only when the user sets it). Requests without `Origin` (SDKs, curl,
  server-side apps) pass, except cross-site subresource loads that a browser marks with
  `Sec-Fetch-Site: cross-site` (an `<img>`/`<audio>`/no-cors fetch from a foreign page).
- CORS answers mirror that policy: the allowed origin is echoed, never `*`.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tts_studio.config import is_loopback_host
from tts_studio.errors import error_body

LOOPBACK_ORIGIN_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})  # exactly these names, any port
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
UI_PREFIX = "/ui"
# The UI page: same-origin only (no CDN, no framing by other sites); Gradio needs inline code and blobs.
UI_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval' blob:; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-src 'self'; "
    "frame-ancestors 'self'; base-uri 'self'; form-action 'self'"
)


def host_name(value: str) -> str:
    """The lower-case host of a `Host` header or netloc, without port (IPv6 keeps no brackets)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class BrowserPolicy:
    """Which `Host` and `Origin` values this studio answers."""

    def __init__(self, bind_host: str, allowed_hosts: Iterable[str], allowed_origins: Iterable[str]) -> None:
        self.bind_host = host_name(bind_host)
        self.wildcard_bind = self.bind_host in WILDCARD_HOSTS
        self.hosts = {host_name(h) for h in allowed_hosts}
        self.any_host = "*" in self.hosts
        origins = [o.strip().rstrip("/").lower() for o in allowed_origins]
        self.any_origin = "*" in origins
        self.origins = {o for o in origins if o != "*"}
        if self.wildcard_bind:
            machine = socket.gethostname().lower()
            self.hosts |= {machine, f"{machine}.local", socket.getfqdn().lower()}

    def host_allowed(self, host: str | None) -> bool:
        if host is None or self.any_host:
            return True  # HTTP/1.0 without Host: nothing a browser sends
        name = host_name(host)
        if is_loopback_host(name) or name == self.bind_host or name in self.hosts:
            return True
        return self.wildcard_bind and _is_ip(name)

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if self.any_origin or origin in self.origins:
            return True
        try:
            parts = urlsplit(origin)
            name = parts.hostname
        except ValueError:  # not a URL at all
            return False
        if parts.scheme not in ("http", "https") or not name:
            return False  # "null" (sandboxed frames, file://) and other schemes
        if name in LOOPBACK_ORIGIN_HOSTS:
            return True
        return host is not None and parts.netloc == host.strip().lower()  # the studio's own origin


def _refusal(message: str, code: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    body = json.dumps(error_body(message, "invalid_request_error", None, code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return body, headers


class BrowserGuard:
    """ASGI middleware applying `BrowserPolicy` before the app sees the request."""

    def __init__(self, app: ASGIApp, policy: BrowserPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host, origin = headers.get("host"), headers.get("origin")
        refusal = self._check(headers, host, origin)
        if refusal is not None:
            await self._refuse(scope, send, *refusal)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        if origin is not None and scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(send, origin, headers)
            return
        await self.app(scope, receive, self._decorating(send, scope["path"], origin))

    def _check(self, headers: Headers, host: str | None, origin: str | None) -> tuple[str, str] | None:
        if not self.policy.host_allowed(host):
            return (
                f"The Host '{host}' is not served here. Add it to the allowed_hosts setting to use this name.",
                "host_not_allowed",
            )
        if origin is not None:
            if not self.policy.origin_allowed(origin, host):
                return (
                    "Requests from this web page are not allowed. Add its origin to the allowed_origins "
                    "setting to let it use the studio.",
                    "origin_not_allowed",
                )
        elif (
            headers.get("sec-fetch-site") == "cross-site"
            and headers.get("sec-fetch-mode") != "navigate"
            and not self.policy.any_origin
        ):
            return ("Cross-site requests from web pages are not allowed.", "origin_not_allowed")
        return None

    async def _refuse(self, scope: Scope, send: Send, message: str, code: str) -> None:
        body, headers = _refusal(message, code)
        if scope["type"] == "websocket":
            # Before accept: uvicorn answers the handshake with 403 (or the denial response extension).
            await send({"type": "websocket.close", "code": 1008, "reason": code})
            return
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _preflight(self, send: Send, origin: str, headers: Headers) -> None:
        allow = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
            (b"access-control-max-age", b"600"),
            (b"vary", b"Origin"),
            (b"content-length", b"0"),
        ]
        requested = headers.get("access-control-request-headers")
        if requested:
            allow.append((b"access-control-allow-headers", requested.encode("latin-1")))
        await send({"type": "http.response.start", "status": 200, "headers": allow})
        await send({"type": "http.response.body", "body": b""})

    def _decorating(self, send: Send, path: str, origin: str | None) -> Send:
        ui = path == UI_PREFIX or path.startswith(UI_PREFIX + "/")

        async def decorated(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                if origin is not None and "access-control-allow-origin" not in out:
                    out["access-control-allow-origin"] = origin
                    out["access-control-expose-headers"] = "x-request-id"
                    out.add_vary_header("Origin")
                out.setdefault("x-frame-options", "SAMEORIGIN")
                out.setdefault("x-content-type-options", "nosniff")
                if ui and out.get("content-type", "").startswith("text/html"):
                    out["content-security-policy"] = UI_CSP
                else:
                    out.setdefault("content-security-policy", "frame-ancestors 'self'")
            await send(message)

        return decorated
