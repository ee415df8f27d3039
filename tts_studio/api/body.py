"""JSON bodies read by hand: size cap (413), media type (415), syntax and schema (400 envelopes)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from tts_studio.api.errors import validation_error
from tts_studio.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)
MAX_DEPTH = 32  # no request of ours nests deeper than a few levels


def check_json(value: Any, depth: int = 0) -> None:
    """400 for JSON nested deeper than MAX_DEPTH or holding text that is not valid Unicode."""
    if depth > MAX_DEPTH:
        raise InvalidRequest(f"The request body is nested deeper than {MAX_DEPTH} levels.", code="invalid_json")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest(
                "The request body contains invalid Unicode (an unpaired surrogate escape).", code="invalid_json"
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            check_json(key, depth + 1)
            check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json(item, depth + 1)


async def read_json(request: Request, model: type[M], max_bytes: int) -> M:
    """The body validated against `model`; every failure is a StudioError."""
    _, data = await read_object(request, max_bytes)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(list(exc.errors())) from None


async def read_object(request: Request, max_bytes: int) -> tuple[bytes, dict[str, Any]]:
    """(raw bytes, parsed object) of a JSON object body; every failure is a StudioError."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(f"Expected a JSON body (Content-Type: application/json), got '{media_type}'.")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"The request body is larger than {max_bytes} bytes.")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"The request body is larger than {max_bytes} bytes.")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("The request body is not valid JSON.", code="invalid_json") from None
    except RecursionError:
        raise InvalidRequest(
            f"The request body is nested deeper than {MAX_DEPTH} levels.", code="invalid_json"
        ) from None
    check_json(data)
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return bytes(body), data
