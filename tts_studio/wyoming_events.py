"""Wyoming event data checked before use: every client value has the type and range it claims, or the
client gets an `error` event naming it (InvalidRequest) and the connection goes on."""

from __future__ import annotations

import json
from typing import Any

from wyoming.audio import AudioStart

from tts_studio.errors import InvalidRequest, PayloadTooLarge
from tts_studio.services.transcription import UPLOAD_LIMITS

DEFAULT_VOICE = "alloy"
MAX_PCM_BYTES = UPLOAD_LIMITS.max_bytes  # audio to transcribe, as an HTTP upload (13 min of 16 kHz mono)
INVALID = "invalid_event"


def too_much_audio() -> PayloadTooLarge:
    return PayloadTooLarge(
        f"More than the {MAX_PCM_BYTES // 2**20} MiB of audio a transcription may have; send audio-stop sooner."
    )


def json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the parser's depth
        raise InvalidRequest(f"{what.capitalize()} is not JSON.", code=INVALID) from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{what.capitalize()} must be a JSON object.", code=INVALID)
    return value


def length(header: dict[str, Any], key: str) -> int:
    value = header.get(key) or 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidRequest(f"'{key}' must be a whole number of bytes.", code=INVALID)
    return value


def unicode(value: str, key: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"'{key}' is not valid Unicode (a lone surrogate).", param=key, code=INVALID) from None
    return value


def string(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise InvalidRequest(f"'{key}' must be a string.", param=key, code=INVALID)
    return unicode(value, key)


def optional_string(data: dict[str, Any], key: str) -> str | None:
    return None if data.get(key) is None else string(data, key)


def voice_name(data: dict[str, Any]) -> str:
    """The voice's name ({"name": ...}); none, or only a language, is the default voice."""
    voice = data.get("voice")
    if voice is None:
        return DEFAULT_VOICE
    if not isinstance(voice, dict):
        raise InvalidRequest('\'voice\' must be an object such as {"name": "alloy"}.', param="voice", code=INVALID)
    return optional_string(voice, "name") or DEFAULT_VOICE


def audio_format(data: dict[str, Any]) -> AudioStart:
    """rate, width and channels of audio to transcribe: 16-bit PCM, 4-192 kHz, 1-8 channels."""
    values = []
    for key, low, high in (("rate", 4000, 192000), ("width", 1, 8), ("channels", 1, 8)):
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise InvalidRequest(f"'{key}' must be a whole number from {low} to {high}.", param=key, code=INVALID)
        values.append(value)
    rate, width, channels = values
    if width != 2:
        raise InvalidRequest("Only 16-bit audio can be transcribed.", code="unsupported_audio")
    return AudioStart(rate=rate, width=width, channels=channels)
