"""`POST /v1/audio/transcriptions` on the bundled Whisper tiny.en (English)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from tts_studio.api.deps import SettingsDep
from tts_studio.api.forms import file_field, list_field, read_form, text_field
from tts_studio.api.openapi_bodies import TRANSCRIPTION_BODY
from tts_studio.audio.decode import DecodedAudio, decode_audio
from tts_studio.errors import InvalidRequest, ModelNotFound, UnsupportedMediaType
from tts_studio.services.admission import RequestSlots
from tts_studio.services.transcription import UPLOAD_LIMITS, Transcriber, Transcript

router = APIRouter()
MODELS = ("whisper-1", "whisper-tiny.en", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-transcribe")
FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
MAX_BYTES = UPLOAD_LIMITS.max_bytes


def _stamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def subtitles(transcript: Transcript, kind: str) -> str:
    sep = "," if kind == "srt" else "."
    blocks = []
    for i, seg in enumerate(transcript.segments, start=1):
        timing = f"{_stamp(seg.start, sep)} --> {_stamp(seg.end, sep)}"
        blocks.append(f"{i}\n{timing}\n{seg.text.strip()}\n" if kind == "srt" else f"{timing}\n{seg.text.strip()}\n")
    body = "\n".join(blocks)
    return body if kind == "srt" else f"WEBVTT\n\n{body}"


def _verbose(transcript: Transcript, words: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": "english" if transcript.language == "en" else transcript.language,
        "duration": transcript.duration,
        "text": transcript.text,
        "segments": [
            {
                "id": s.id,
                "seek": 0,
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "tokens": list(s.tokens),
                "temperature": s.temperature,
                "avg_logprob": s.avg_logprob,
                "compression_ratio": s.compression_ratio,
                "no_speech_prob": s.no_speech_prob,
            }
            for s in transcript.segments
        ],
        "usage": {"type": "duration", "seconds": max(1, round(transcript.duration))},
    }
    if words:
        body["words"] = list(transcript.words)
    return body


def text_deltas(transcript: Transcript) -> list[str]:
    """One delta per segment, joining to exactly `transcript.text` (segments carry Whisper's leading
    spaces; the final text has none at its start)."""
    deltas: list[str] = []
    for seg in transcript.segments:
        piece = seg.text.strip()
        if piece:
            deltas.append(f" {piece}" if deltas else piece)
    return deltas


def _events(transcript: Transcript) -> Iterator[bytes]:
    for delta in text_deltas(transcript):
        yield b"data: " + json.dumps({"type": "transcript.text.delta", "delta": delta}).encode() + b"\n\n"
    done = {
        "type": "transcript.text.done",
        "text": transcript.text,
        "usage": {"type": "duration", "seconds": max(1, round(transcript.duration))},
    }
    yield b"data: " + json.dumps(done).encode() + b"\n\n"


def _decode(data: bytes) -> DecodedAudio:
    """The upload as audio; unreadable files are a 400, as OpenAI answers."""
    try:
        return decode_audio(data, UPLOAD_LIMITS, param="file")
    except UnsupportedMediaType as exc:
        raise InvalidRequest(exc.message, param="file", code="invalid_file_format") from None


@router.post("/audio/transcriptions", openapi_extra=TRANSCRIPTION_BODY)
async def create_transcription(request: Request, settings: SettingsDep) -> Response:
    form = await read_form(request, MAX_BYTES)
    model = text_field(form, "model", required=True)
    assert model is not None
    if not model.startswith(MODELS):
        raise ModelNotFound(f"The model '{model}' does not exist; use whisper-1.", param="model")
    fmt = text_field(form, "response_format") or "json"
    if fmt not in FORMATS:
        raise InvalidRequest(f"'response_format' must be one of {', '.join(FORMATS)}.", param="response_format")
    language = text_field(form, "language") or "en"
    if language != "en":
        raise InvalidRequest("The bundled Whisper model is English-only ('language' must be 'en').", param="language")
    raw_temperature = text_field(form, "temperature") or "0"
    try:
        temperature = float(raw_temperature)
    except ValueError:
        raise InvalidRequest("'temperature' must be a number.", param="temperature") from None
    if not 0 <= temperature <= 1:
        raise InvalidRequest("'temperature' must be between 0 and 1.", param="temperature")
    granularities = list_field(form, "timestamp_granularities")
    stream = (text_field(form, "stream") or "false").lower() == "true" and model != "whisper-1"
    upload = await file_field(form, ("file",), MAX_BYTES)
    prompt = text_field(form, "prompt")
    words = "word" in granularities
    transcriber: Transcriber = request.app.state.transcriber
    slots: RequestSlots = request.app.state.transcription_slots
    with slots.held():
        audio = await anyio.to_thread.run_sync(_decode, upload.data)
        transcript = await anyio.to_thread.run_sync(
            lambda: transcriber.transcribe(audio, language, prompt, temperature, word_timestamps=words)
        )
    if stream:
        return StreamingResponse(_events(transcript), media_type="text/event-stream")
    if fmt == "text":
        return PlainTextResponse(transcript.text + "\n")
    if fmt in ("srt", "vtt"):
        return PlainTextResponse(subtitles(transcript, fmt))
    if fmt == "verbose_json":
        return JSONResponse(_verbose(transcript, words))
    usage = {"type": "duration", "seconds": max(1, round(transcript.duration))}
    return JSONResponse({"text": transcript.text, "usage": usage})
