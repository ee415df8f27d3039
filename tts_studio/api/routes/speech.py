"""`POST /v1/audio/speech`: streamed audio in every format, or SSE events."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from tts_studio.api.body import read_json
from tts_studio.api.deps import SettingsDep
from tts_studio.api.openapi_bodies import json_body
from tts_studio.api.schemas import SpeechBody
from tts_studio.api.streaming import SSE_HEADERS, job_bytes, job_response, sse_frame, until_disconnected
from tts_studio.audio.encode import FORMATS
from tts_studio.errors import StudioError, error_body
from tts_studio.projects.dictionary import apply as apply_dictionary
from tts_studio.services.job import SpeechJob, SpeechJobs
from tts_studio.services.speech import SpeechOrder, SpeechPlan

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


async def _sse_events(job: SpeechJob, first: bytes, input_tokens: int) -> AsyncIterator[bytes]:
    """`speech.audio.delta` per encoded chunk, then `speech.audio.done` with usage. A failure after the
    first event is sent as an `{"error": ...}` event, which the SDKs raise as APIError."""
    try:
        data: bytes | None = first
        while data is not None:
            yield sse_frame({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode("ascii")})
            data = await job.anext()
    except StudioError as exc:
        yield sse_frame(exc.body())
        return
    except Exception:
        log.exception("speech stream failed")
        yield sse_frame(error_body("Synthesis failed; see the server log.", "server_error", None, "internal_error"))
        return
    if job.cancelled:
        return
    output_tokens = job.progress.output_tokens
    usage = {"input_tokens": input_tokens, "output_tokens": output_tokens, "total_tokens": input_tokens + output_tokens}
    yield sse_frame({"type": "speech.audio.done", "usage": usage})


@router.post("/audio/speech", openapi_extra=_OPENAPI_BODY, response_class=StreamingResponse)
async def create_speech(request: Request, settings: SettingsDep) -> StreamingResponse:
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
    sse = body.stream_format == "sse" or (
        "stream_format" not in body.model_fields_set and "text/event-stream" in request.headers.get("accept", "")
    )  # the Chatterbox-server dialect asks for SSE with the Accept header
    rate = body.sample_rate if body.response_format in RESAMPLED_FORMATS else None
    job = jobs(request).admit()  # before anything with a cost: a voice_url fetch, a decode, a load
    try:
        plan = await until_disconnected(request, job.cancel, job.plan(order))
    except BaseException:
        await job.aclose()
        raise
    return await stream_job(request, job, [plan], body.response_format, sse=sse, sample_rate=rate)


def jobs(request: Request) -> SpeechJobs:
    jobs: SpeechJobs = request.app.state.services.jobs
    return jobs


async def stream_speech(
    request: Request, plans: list[SpeechPlan], fmt: str, *, sse: bool = False, sample_rate: int | None = None
) -> StreamingResponse:
    """Speak `plans` as one streamed response (raw audio or SSE events), as one admitted job."""
    return await stream_job(request, jobs(request).admit(), plans, fmt, sse=sse, sample_rate=sample_rate)


async def stream_job(
    request: Request, job: SpeechJob, plans: list[SpeechPlan], fmt: str, *, sse: bool, sample_rate: int | None
) -> StreamingResponse:
    """The response for an admitted `job`: the first bytes are made before it starts (errors keep their
    status; a client gone meanwhile cancels the job), then the rest as it is made."""
    try:
        job.start(plans, fmt, sample_rate)
        first = await until_disconnected(request, job.cancel, job.first())
    except BaseException:
        await job.aclose()
        raise
    if sse:
        content = _sse_events(job, first, sum(p.input_tokens for p in plans))
        return job_response(job, content, media_type="text/event-stream", headers=SSE_HEADERS)
    return job_response(job, job_bytes(job, first), media_type=FORMATS[fmt].mime)
