"""Multipart forms read by hand: size cap (413), media type (415), missing fields (400)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.types import Message

from tts_studio.errors import InvalidRequest, PayloadTooLarge, StudioError, UnsupportedMediaType

FORM_SLACK = 256 * 1024  # room for the other fields and the multipart framing


@dataclass(frozen=True)
class UploadedFile:
    data: bytes
    filename: str | None
    content_type: str | None


async def read_form(request: Request, max_file_bytes: int) -> FormData:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise UnsupportedMediaType(f"Expected multipart/form-data, got '{media_type or 'nothing'}'.")
    cap = max_file_bytes + FORM_SLACK
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise PayloadTooLarge(f"The upload is larger than {max_file_bytes} bytes.")
    received = 0

    async def capped_receive() -> Message:
        """The body as it arrives, stopped at the cap (chunked uploads declare no length)."""
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > cap:
            raise PayloadTooLarge(f"The upload is larger than {max_file_bytes} bytes.")
        return message

    try:
        return await Request(request.scope, capped_receive).form(max_files=2, max_fields=50)
    except StudioError:
        raise
    except Exception as exc:  # malformed multipart bodies raise several parser errors
        raise InvalidRequest(f"The multipart body could not be parsed ({type(exc).__name__}).") from None


def text_field(form: FormData, name: str, *, required: bool = False) -> str | None:
    value = form.get(name)
    if isinstance(value, UploadFile):
        raise InvalidRequest(f"'{name}' must be a text field, not a file.", param=name, code="invalid_type")
    if value is None or value == "":
        if required:
            raise InvalidRequest(
                f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
            )
        return None
    return value


def list_field(form: FormData, name: str) -> list[str]:
    """Repeated `name[]` (or `name`) parts, as the SDKs send arrays."""
    return [v for key in (f"{name}[]", name) for v in form.getlist(key) if isinstance(v, str)]


async def file_field(form: FormData, names: tuple[str, ...], max_bytes: int) -> UploadedFile:
    """The first file among `names` (e.g. OpenAI's `audio_sample`, then common aliases)."""
    for name in names:
        value = form.get(name)
        if isinstance(value, UploadFile):
            data = await value.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise PayloadTooLarge(f"'{name}' is larger than {max_bytes} bytes.", param=name)
            return UploadedFile(data, value.filename, value.content_type)
        if isinstance(value, str):
            raise InvalidRequest(f"'{name}' must be a file part.", param=name, code="invalid_type")
    raise InvalidRequest(
        f"Missing required parameter: '{names[0]}' (an audio file).",
        param=names[0],
        code="missing_required_parameter",
    )


def bool_field(form: FormData, name: str) -> bool:
    """Form booleans: "true"/"1"/"yes"/"on", or any OpenAI consent id (`cons_...`)."""
    value = (text_field(form, name) or "").strip().lower()
    return value in {"true", "1", "yes", "on"} or value.startswith("cons_")
