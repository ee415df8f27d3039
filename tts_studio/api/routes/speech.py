"""`POST /v1/audio/speech`: streamed audio in every format, or SSE events."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Generator
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from tts_studio.api.body import read_json
from tts_studio.api.deps import SettingsDep, SpeechDep
from tts_studio.api.openapi_bodies import json_body
from tts_studio.api.schemas import SpeechBody
from tts_studio.api.streaming import ClosingStreamingResponse, first_item
from tts_studio.audio.encode import FORMATS
from tts_studio.errors import StudioError, error_body
from tts_studio.projects.dictionary import apply as apply_dictionary
from tts_studio.services.admission import RequestSlots
from tts_studio.services.pipeline import Progress
from tts_studio.services.speech import SpeechOrder, SpeechPlan, SpeechService

log = logging.getLogger(__name__)
RESAMPLED_FORMATS = ("pcm", "wav")  # `sample_rate` applies to these (other codecs keep 24 kHz)
router = APIRouter()

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_OPENAPI_BODY = {
    **json_body(SpeechBody),
    "responses": {
        "200": {
            "description": "The audio, streamed as it is made (or SSE events with stream_format=sse).",
            "content": {
                **{fmt.mime: _BINARY for fmt in FORMATS.values()},
                "text/event-stream": {"schema": {"type": "string"}},
            },
        }
    },
}


def _event(payload: dict[str, Any]) -> bytes:
    """One SSE frame: `data: <compact json>` and a blank line."""
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _sse_events(
    audio: Generator[bytes, None, None], progress: Progress, input_tokens: int
) -> Generator[bytes, None, None]:
    """`speech.audio.delta` per encoded chunk, then `speech.audio.done` with usage.

    A failure before the first event propagates (the response still gets an error status); after it,
    the failure is sent as an `{"error": ...}` event, which the SDKs raise as APIError.
    """
    started = False
    try:
        for data in audio:
            started = True
            yield _event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode("ascii")})
    except Exception as exc:
        if not started:
            raise
        if isinstance(exc, StudioError):
            yield _event(exc.body())
        else:
            log.exception("speech stream failed")
            yield _event(error_body("Synthesis failed; see the server log.", "server_error", None, "internal_error"))
        return
    finally:
        audio.close()
    usage = {
        "input_tokens": input_tokens,
        "output_tokens": progress.output_tokens,
        "total_tokens": input_tokens + progress.output_tokens,
    }
    yield _event({"type": "speech.audio.done", "usage": usage})


@router.post("/audio/speech", openapi_extra=_OPENAPI_BODY, response_class=StreamingResponse)
async def create_speech(request: Request, speech: SpeechDep, settings: SettingsDep) -> StreamingResponse:
    body = await read_json(request, SpeechBody, settings.max_body_bytes)
    text = body.input
    if body.dictionary if body.dictionary is not None else settings.speech_dictionary:
        text = apply_dictionary(text, request.app.state.services.dictionary.entries(), body.voice_id)
    order = SpeechOrder(
        model=body.model,
        input=text,
        voice=body.voice_id,
        speed=body.speed,
        instructions=body.instructions,
        extra=body.extra,
        voice_b64=body.voice_b64,
        voice_url=body.voice_url,
    )
    plan = await anyio.to_thread.run_sync(speech.plan, order)  # may decode or fetch reference audio
    sse = body.stream_format == "sse" or (
        "stream_format" not in body.model_fields_set and "text/event-stream" in request.headers.get("accept", "")
    )  # the Chatterbox-server dialect asks for SSE with the Accept header
    rate = body.sample_rate if body.response_format in RESAMPLED_FORMATS else None
    return await stream_speech(request, speech, [plan], body.response_format, sse=sse, sample_rate=rate)


async def stream_speech(
    request: Request,
    speech: SpeechService,
    plans: list[SpeechPlan],
    fmt: str,
    *,
    sse: bool = False,
    sample_rate: int | None = None,
) -> StreamingResponse:
    """Speak `plans` as one streamed response (raw audio or SSE events), holding one admission slot."""
    slots: RequestSlots = request.app.state.speech_slots
    slots.take()
    progress = Progress()
    audio = speech.speak(plans, fmt, progress=progress, sample_rate=sample_rate)
    payload = _sse_events(audio, progress, sum(p.input_tokens for p in plans)) if sse else audio
    try:
        first = await first_item(payload)  # loads the engine; errors here keep their status
    except BaseException:
        await anyio.to_thread.run_sync(payload.close)
        slots.give_back()
        raise

    def close() -> None:
        payload.close()  # stops synthesis within one piece and releases the engine
        slots.give_back()

    if sse:
        media_type, headers = "text/event-stream", {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    else:
        media_type, headers = FORMATS[fmt].mime, {}
    return ClosingStreamingResponse(first, payload, close, media_type=media_type, headers=headers)
