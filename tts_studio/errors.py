"""Status-carrying exceptions and the OpenAI error envelope."""

from __future__ import annotations

from typing import Any


class StudioError(Exception):
    """Base for every error that reaches a client; rendered as the OpenAI envelope."""

    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


class InvalidRequest(StudioError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_value"


class Unauthorized(StudioError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class NotFound(StudioError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class Conflict(StudioError):
    """The request is valid but the resource is not in a state to serve it (e.g. export before render)."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"


class PayloadTooLarge(StudioError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UnsupportedMediaType(StudioError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class TooManyRequests(StudioError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class EngineUnavailable(StudioError):
    """The engine cannot run here (package missing, no weights, out of memory)."""

    status = 503
    type = "server_error"
    code = "engine_unavailable"


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The OpenAI error envelope: all four keys, always; text that is not valid Unicode (lone surrogates
    from a hostile request) is replaced, never echoed raw."""
    return {"error": {"message": clean_text(message), "type": type_, "param": clean_text(param), "code": code}}


def clean_text(value: str | None) -> str | None:
    """`value` with anything UTF-8 cannot encode (lone surrogates) replaced by "?"."""
    if value is None:
        return None
    return value.encode("utf-8", "replace").decode("utf-8")
