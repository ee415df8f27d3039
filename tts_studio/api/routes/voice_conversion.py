"""Voice conversion: `POST /v1/audio/voice-conversion` and ElevenLabs' `POST /v1/speech-to-speech/{voice_id}`.

A recording comes in (multipart), the same speech comes out in a library voice, streamed in any response
format. Both routes are one admitted speech job over a ConversionOrder: admission, the engine lease, the
stall guard and cleanup on a client gone are the speech route's."""

from __future__ import annotations

import io
import wave
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.datastructures import FormData

from tts_studio.api.forms import file_field, read_form, text_field
from tts_studio.api.openapi_bodies import form_body
from tts_studio.api.routes.speech import RESAMPLED_FORMATS, jobs, stream_job
from tts_studio.api.schemas import MAX_RATE, MIN_RATE
from tts_studio.api.streaming import until_disconnected
from tts_studio.audio.encode import FORMATS
from tts_studio.errors import InvalidRequest
from tts_studio.services.conversion import ConversionOrder
from tts_studio.services.transcription import UPLOAD_LIMITS

router = APIRouter()
MAX_BYTES = UPLOAD_LIMITS.max_bytes

_FILE = {"type": "string", "format": "binary", "description": "The recording: wav, mp3, flac, ogg/opus, m4a/aac, webm."}
_RESPONSES = {
    "200": {
        "description": "The converted audio, streamed as it is made (as long as the recording).",
        "content": {
            **{fmt.mime: {"schema": {"type": "string", "format": "binary"}} for fmt in FORMATS.values()},
            "text/event-stream": {"schema": {"type": "string"}},
        },
    }
}
_CONVERSION_BODY = form_body(
    ["audio", "voice"],
    {
        "audio": _FILE,
        "voice": {"type": "string", "description": "A library voice id or name, or an OpenAI voice name."},
        "model": {"type": "string", "examples": ["chatterbox-vc", "chatterbox-vc-standard"]},
        "response_format": {"type": "string", "enum": list(FORMATS), "default": "mp3"},
        "stream_format": {"type": "string", "enum": ["audio", "sse"], "default": "audio"},
        "sample_rate": {"type": "integer", "minimum": MIN_RATE, "maximum": MAX_RATE, "description": "pcm and wav."},
        "steps": {"type": "integer", "minimum": 1, "description": "Decoder steps (chatterbox-vc: 2; 1 is faster)."},
    },
)
_ELEVENLABS_BODY = form_body(
    ["audio"],
    {
        "audio": _FILE,
        "model_id": {"type": "string", "description": "eleven_* ids use the default conversion model."},
        "file_format": {"type": "string", "enum": ["other", "pcm_s16le_16"], "default": "other"},
    },
)


def _int_field(form: FormData, name: str, low: int, high: int | None = None) -> int | None:
    raw = text_field(form, name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"'{name}' must be an integer, got {raw!r}.", param=name) from None
    if value < low or (high is not None and value > high):
        raise InvalidRequest(f"'{name}' must be between {low} and {high or 'more'}, got {value}.", param=name)
    return value


def _format(value: str | None, param: str) -> str:
    fmt = value or "mp3"
    if fmt not in FORMATS:
        raise InvalidRequest(f"'{param}' must be one of {', '.join(FORMATS)}, got {fmt!r}.", param=param)
    return fmt


async def _convert(
    request: Request, order: ConversionOrder, fmt: str, *, sse: bool = False, sample_rate: int | None = None
) -> StreamingResponse:
    job = jobs(request).admit()  # 429 before the decode and the load
    try:
        plan = await until_disconnected(request, job.cancel, job.plan(order))
    except BaseException:
        await job.aclose()
        raise
    rate = sample_rate if fmt in RESAMPLED_FORMATS else None
    return await stream_job(request, job, [plan], fmt, sse=sse, sample_rate=rate)


@router.post(
    "/audio/voice-conversion",
    openapi_extra={**_CONVERSION_BODY, "responses": _RESPONSES},
    response_class=StreamingResponse,
)
async def convert_voice(request: Request) -> StreamingResponse:
    """Re-voice `audio` into `voice` (timing kept), as audio in `response_format` or SSE events."""
    form = await read_form(request, MAX_BYTES)
    upload = await file_field(form, ("audio", "file"), MAX_BYTES)
    voice = text_field(form, "voice", required=True)
    assert voice is not None
    fmt = _format(text_field(form, "response_format"), "response_format")
    stream_format = text_field(form, "stream_format") or "audio"
    if stream_format not in ("audio", "sse"):
        raise InvalidRequest("'stream_format' must be 'audio' or 'sse'.", param="stream_format")
    steps = _int_field(form, "steps", 1)
    extra: dict[str, Any] = {"steps": steps} if steps is not None else {}
    order = ConversionOrder(upload.data, voice, text_field(form, "model"), extra)
    rate = _int_field(form, "sample_rate", MIN_RATE, MAX_RATE)
    return await _convert(request, order, fmt, sse=stream_format == "sse", sample_rate=rate)


def elevenlabs_format(output_format: str | None) -> tuple[str, int | None]:
    """(response format, sample rate) for ElevenLabs' `output_format` (`mp3_44100_128`, `pcm_16000`, ...);
    our own format names work too. Compressed formats keep 24 kHz."""
    value = output_format or "mp3_44100_128"
    codec, _, rest = value.partition("_")
    if codec in FORMATS:
        rate = rest.split("_")[0]
        sample_rate = int(rate) if codec in RESAMPLED_FORMATS and rate.isdigit() else None
        if sample_rate is not None and not MIN_RATE <= sample_rate <= MAX_RATE:
            sample_rate = None
        return codec, sample_rate
    raise InvalidRequest(
        f"'output_format' {value!r} is not supported here; use mp3_*, opus_*, pcm_<rate>, wav_<rate>, or one of "
        f"{', '.join(FORMATS)}.",
        param="output_format",
    )


def _pcm16k_wav(data: bytes) -> bytes:
    """ElevenLabs' `file_format=pcm_s16le_16`: raw 16-bit 16 kHz mono, wrapped as WAV for the decoder."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(data[: len(data) // 2 * 2])
    return buffer.getvalue()


@router.post(
    "/speech-to-speech/{voice_id}",
    openapi_extra={**_ELEVENLABS_BODY, "responses": _RESPONSES},
    response_class=StreamingResponse,
)
@router.post("/speech-to-speech/{voice_id}/stream", include_in_schema=False, response_class=StreamingResponse)
async def speech_to_speech(voice_id: str, request: Request, output_format: str | None = None) -> StreamingResponse:
    """ElevenLabs' shape: `voice_id` in the path, `output_format` in the query, multipart `audio` and
    `model_id` (eleven_* ids use the default conversion model)."""
    fmt, rate = elevenlabs_format(output_format)
    form = await read_form(request, MAX_BYTES)
    upload = await file_field(form, ("audio",), MAX_BYTES)
    data = upload.data
    if (text_field(form, "file_format") or "other") == "pcm_s16le_16":
        data = _pcm16k_wav(data)
    order = ConversionOrder(data, voice_id, text_field(form, "model_id"))
    return await _convert(request, order, fmt, sample_rate=rate)
