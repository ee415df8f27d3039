"""Exception handlers: every error, validation included, leaves as the OpenAI envelope."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tts_studio.errors import InvalidRequest, StudioError, error_body

log = logging.getLogger(__name__)

_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}


def validation_error(errors: list[Any]) -> StudioError:
    """The first pydantic/FastAPI validation error as a 400 naming the parameter."""
    if not errors:
        return InvalidRequest("Invalid request.")
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "form")]
    param = ".".join(loc) or None
    kind = first.get("type", "")
    if kind == "json_invalid":
        return InvalidRequest("The request body is not valid JSON.", code="invalid_json")
    if kind == "missing":
        return InvalidRequest(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    code = "invalid_type" if kind.endswith("_type") or kind == "model_attributes_type" else "invalid_value"
    where = f"'{param}'" if param else "the request body"
    return InvalidRequest(f"Invalid value for {where}: {first.get('msg', 'invalid')}.", param=param, code=code)


def _response(exc: StudioError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


class CrashGuard:
    """Innermost middleware: an unexpected exception becomes the 500 envelope *here*, so the server's
    last-resort handler never re-raises and the client's keep-alive connection stays usable."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:
            if started:
                raise  # mid-stream: nothing can be sent any more; uvicorn closes the connection
            log.error("Unhandled error", exc_info=exc)
            body = error_body("The server had an internal error; see its log.", "server_error", None, "internal_error")
            await JSONResponse(body, status_code=500)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    async def studio(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StudioError)
        return _response(exc)

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _response(validation_error(list(exc.errors())))

    async def http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        status = exc.status_code
        kind = "invalid_request_error" if status < 500 else "server_error"
        body = error_body(str(exc.detail), kind, None, _HTTP_CODES.get(status))
        return JSONResponse(body, status_code=status, headers=getattr(exc, "headers", None))

    async def crash(_: Request, exc: Exception) -> JSONResponse:
        log.error("Unhandled error", exc_info=exc)
        return JSONResponse(
            error_body("The server had an internal error; see its log.", "server_error", None, "internal_error"),
            status_code=500,
        )

    app.add_exception_handler(StudioError, studio)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http)
    app.add_exception_handler(Exception, crash)
    app.add_middleware(CrashGuard)  # added first: innermost of the middleware
