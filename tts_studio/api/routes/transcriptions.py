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
from tts_studio.audio.decode import AudioLimits, decode_audio
from tts_studio.errors import InvalidRequest, ModelNotFound
from tts_studio.services.transcription import Transcriber, Transcript

router = APIRouter()
MODELS = ("whisper-1", "whisper-tiny.en", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-transcribe")
FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
MAX_BYTES = 25 * 1024 * 1024


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
        "task": "transcribe", "language": "english" if transcript.language == "en" else transcript.language,
        "duration": transcript.duration, "text": transcript.text,
        "segments": [{"id": s.id, "seek": 0, "start": s.start, "end": s.end, "text": s.text,
                      "tokens": list(s.tokens), "temperature": s.temperature, "avg_logprob": s.avg_logprob,
                      "compression_ratio": s.compression_ratio, "no_speech_prob": s.no_speech_prob}
                     for s in transcript.segments],
        "usage": {"type": "duration", "seconds": max(1, round(transcript.duration))},
    }  # fmt: skip
    if words:
        body["words"] = list(transcript.words)
    return body


def _events(transcript: Transcript) -> Iterator[bytes]:
    for seg in transcript.segments:
        yield b"data: " + json.dumps({"type": "transcript.text.delta", "delta": seg.text}).encode() + b"\n\n"
    done = {"type": "transcript.text.done", "text": transcript.text,
            "usage": {"type": "duration", "seconds": max(1, round(transcript.duration))}}  # fmt: skip
    yield b"data: " + json.dumps(done).encode() + b"\n\n"


@router.post("/audio/transcriptions")
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
    audio = decode_audio(upload.data, AudioLimits(max_bytes=MAX_BYTES, min_seconds=0.05, max_seconds=3600),
                         param="file")  # fmt: skip
    transcriber: Transcriber = request.app.state.transcriber
    transcript = await anyio.to_thread.run_sync(
        lambda: transcriber.transcribe(
            audio, language, text_field(form, "prompt"), temperature, word_timestamps="word" in granularities
        )
    )
    if stream:
        return StreamingResponse(_events(transcript), media_type="text/event-stream")
    if fmt == "text":
        return PlainTextResponse(transcript.text + "\n")
    if fmt in ("srt", "vtt"):
        return PlainTextResponse(subtitles(transcript, fmt))
    if fmt == "verbose_json":
        return JSONResponse(_verbose(transcript, "word" in granularities))
    usage = {"type": "duration", "seconds": max(1, round(transcript.duration))}
    return JSONResponse({"text": transcript.text, "usage": usage})
