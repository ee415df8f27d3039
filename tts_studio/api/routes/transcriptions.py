"""`POST /v1/audio/transcriptions`: Whisper tiny.en for English, the multilingual Whisper (when downloaded) for
every other language and for detection; `prompt`, `keywords`, `languages` and `chunking_strategy` as OpenAI's
current API has them (tts_studio/services/transcription.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.datastructures import FormData

from tts_studio.api.deps import SettingsDep
from tts_studio.api.forms import file_field, list_field, read_form, text_field
from tts_studio.api.openapi_bodies import TRANSCRIPTION_BODY
from tts_studio.audio.decode import DecodedAudio, decode_audio
from tts_studio.errors import InvalidRequest, ModelNotFound, UnsupportedMediaType
from tts_studio.services.admission import RequestSlots
from tts_studio.services.transcription import UPLOAD_LIMITS, Transcriber, Transcript
from tts_studio.services.whisper_models import LANGUAGES, require_language, require_languages

router = APIRouter()
# Each id also in its dated or variant forms (`gpt-4o-mini-transcribe-2025-12-15`, `gpt-4o-transcribe-diarize`).
MODELS = (
    "whisper-1",
    "whisper-tiny.en",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-transcribe",
    "gpt-live-transcribe",
    "gpt-realtime-whisper",
)
FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
GRANULARITIES = ("word", "segment")
MAX_BYTES = UPLOAD_LIMITS.max_bytes
MAX_KEYWORD = 200
NO_DIARIZATION = "this server does not diarize (it does not tell speakers apart)"
# OpenAI's server_vad keys -> faster-whisper's VAD options, with OpenAI's defaults and bounds.
VAD_KEYS = {
    "prefix_padding_ms": ("speech_pad_ms", 300, 0, 10_000),
    "silence_duration_ms": ("min_silence_duration_ms", 200, 0, 10_000),
    "threshold": ("threshold", 0.5, 0, 1),
}


def known_model(model: str) -> bool:
    return any(model == key or model.startswith(f"{key}-") for key in MODELS)


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
        "language": LANGUAGES.get(transcript.language, transcript.language),
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
        "languages": languages(transcript),
        "usage": {"type": "duration", "seconds": max(1, round(transcript.duration))},
    }
    if words:
        body["words"] = list(transcript.words)
    return body


def languages(transcript: Transcript) -> list[dict[str, str]]:
    """The detected (or given) language, as OpenAI reports it for gpt-transcribe."""
    return [{"code": transcript.language}] if transcript.language else []


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
        "languages": languages(transcript),
    }
    yield b"data: " + json.dumps(done).encode() + b"\n\n"


def _decode(data: bytes) -> DecodedAudio:
    """The upload as audio; unreadable files are a 400, as OpenAI answers."""
    try:
        return decode_audio(data, UPLOAD_LIMITS, param="file")
    except UnsupportedMediaType as exc:
        raise InvalidRequest(exc.message, param="file", code="invalid_file_format") from None


def _nested(form: FormData, name: str) -> dict[str, str]:
    """`name[key]` parts (how the SDKs send an object in a multipart form)."""
    prefix = f"{name}["
    return {
        key[len(prefix) : -1]: value
        for key, value in form.multi_items()
        if key.startswith(prefix) and key.endswith("]") and isinstance(value, str)
    }


def chunking_strategy(form: FormData) -> dict[str, float] | None:
    """`chunking_strategy` as faster-whisper VAD options: None when unset (one block), {} for "auto" (its
    default VAD), the server_vad settings mapped otherwise; a 400 naming the parameter for anything else."""
    raw, nested = text_field(form, "chunking_strategy"), _nested(form, "chunking_strategy")
    if raw is None and not nested:
        return None
    config: Any = nested
    if raw is not None:
        if nested:
            raise InvalidRequest("Give 'chunking_strategy' once: 'auto' or an object.", param="chunking_strategy")
        try:
            config = raw.strip() if raw.strip() == "auto" else json.loads(raw)
        except ValueError:
            config = raw
    if config == "auto":
        return {}
    if not isinstance(config, dict) or config.get("type") != "server_vad":
        raise InvalidRequest(
            "'chunking_strategy' must be 'auto' or {\"type\": \"server_vad\", ...}.", param="chunking_strategy"
        )
    unknown = sorted(set(config) - {"type", *VAD_KEYS})
    if unknown:
        raise InvalidRequest(f"Unknown chunking_strategy key '{unknown[0][:40]}'.", param="chunking_strategy")
    options: dict[str, float] = {}
    for key, (option, default, low, high) in VAD_KEYS.items():
        value = config.get(key, default)
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if not low <= number <= high or (key.endswith("_ms") and not number.is_integer()):
            kind = "an integer" if key.endswith("_ms") else "a number"
            raise InvalidRequest(
                f"'chunking_strategy[{key}]' must be {kind} between {low} and {high}.", param="chunking_strategy"
            )
        options[option] = int(number) if key.endswith("_ms") else number
    return options


def keywords(form: FormData) -> str | None:
    """`keywords[]` as faster-whisper's hotwords (one phrase, comma-separated)."""
    words = [word.strip() for word in list_field(form, "keywords")]
    if any(not word or len(word) > MAX_KEYWORD for word in words):
        raise InvalidRequest(f"Each of 'keywords' must be 1 to {MAX_KEYWORD} characters.", param="keywords")
    return ", ".join(words) or None


def _refuse_diarization(form: FormData, fmt: str) -> None:
    if fmt == "diarized_json":
        raise InvalidRequest(
            f"'response_format' diarized_json is not available: {NO_DIARIZATION}; use json, text, srt, "
            "verbose_json or vtt.",
            param="response_format",
            code="unsupported_value",
        )
    for name in ("known_speaker_names", "known_speaker_references"):
        if list_field(form, name):
            raise InvalidRequest(f"'{name}' is not available: {NO_DIARIZATION}.", param=name, code="unsupported_value")


@router.post("/audio/transcriptions", openapi_extra=TRANSCRIPTION_BODY)
async def create_transcription(request: Request, settings: SettingsDep) -> Response:
    form = await read_form(request, MAX_BYTES)
    model = text_field(form, "model", required=True)
    assert model is not None
    if not known_model(model):
        raise ModelNotFound(f"The model '{model}' does not exist; use whisper-1 or gpt-transcribe.", param="model")
    fmt = text_field(form, "response_format") or "json"
    _refuse_diarization(form, fmt)
    if fmt not in FORMATS:
        raise InvalidRequest(f"'response_format' must be one of {', '.join(FORMATS)}.", param="response_format")
    language = text_field(form, "language")
    if language is not None:
        require_language(language, "language")
    hints = require_languages(list_field(form, "languages"), "languages")
    raw_temperature = text_field(form, "temperature") or "0"
    try:
        temperature = float(raw_temperature)
    except ValueError:
        raise InvalidRequest("'temperature' must be a number.", param="temperature") from None
    if not 0 <= temperature <= 1:
        raise InvalidRequest("'temperature' must be between 0 and 1.", param="temperature")
    granularities = list_field(form, "timestamp_granularities")
    if any(g not in GRANULARITIES for g in granularities):
        raise InvalidRequest("'timestamp_granularities' takes 'word' and 'segment'.", param="timestamp_granularities")
    vad, hotwords = chunking_strategy(form), keywords(form)
    stream = (text_field(form, "stream") or "false").lower() == "true" and model != "whisper-1"
    upload = await file_field(form, ("file",), MAX_BYTES)
    prompt = text_field(form, "prompt")
    words = "word" in granularities
    transcriber: Transcriber = request.app.state.transcriber
    slots: RequestSlots = request.app.state.transcription_slots

    def hear(audio: DecodedAudio) -> Transcript:
        return transcriber.transcribe(
            audio, language, prompt, temperature, word_timestamps=words, languages=hints, hotwords=hotwords, vad=vad
        )

    with slots.held():
        audio = await anyio.to_thread.run_sync(_decode, upload.data)
        transcript = await anyio.to_thread.run_sync(hear, audio)
    if stream:
        return StreamingResponse(_events(transcript), media_type="text/event-stream")
    if fmt == "text":
        return PlainTextResponse(transcript.text + "\n")
    if fmt in ("srt", "vtt"):
        return PlainTextResponse(subtitles(transcript, fmt))
    if fmt == "verbose_json":
        return JSONResponse(_verbose(transcript, words))
    usage = {"type": "duration", "seconds": max(1, round(transcript.duration))}
    return JSONResponse({"text": transcript.text, "languages": languages(transcript), "usage": usage})
