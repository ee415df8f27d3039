"""Request bodies for `/openapi.json` of the routes that read their bodies by hand (to answer 400/413/415
envelopes instead of FastAPI's 422): JSON models and the multipart uploads."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tts_studio.services.library import MAX_LANGUAGE, MAX_NAME, MAX_TRANSCRIPT


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """The model's schema; nested models (`$defs`) are moved to components by routes/docs.py."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def form_body(required: list[str], properties: dict[str, dict[str, Any]]) -> dict[str, Any]:
    schema = {"type": "object", "required": required, "properties": properties}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


_FILE = {"type": "string", "format": "binary"}
VOICE_UPLOAD_BODY = form_body(
    ["name", "audio_sample"],
    {
        "name": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_NAME,
            "description": "Display name (not an OpenAI or engine voice).",
        },
        "audio_sample": {**_FILE, "description": "wav, mp3, flac, ogg/opus, m4a/aac or webm; 1-120 s."},
        "consent": {"type": "string", "description": "true/false or an OpenAI consent id."},
        "transcript": {"type": "string", "maxLength": MAX_TRANSCRIPT},
        "language": {"type": "string", "maxLength": MAX_LANGUAGE, "default": "en"},
    },
)
TRANSCRIPTION_BODY = form_body(
    ["file", "model"],
    {
        "file": {**_FILE, "description": "Audio up to 25 MiB and one hour."},
        "model": {
            "type": "string",
            "examples": ["whisper-1", "gpt-transcribe", "gpt-4o-mini-transcribe-2025-12-15"],
            "description": "Any OpenAI transcription id (dated forms too); all use Whisper here.",
        },
        "language": {
            "type": "string",
            "examples": ["en", "fr"],
            "description": "ISO-639-1. English: tiny.en; other languages need the multilingual Whisper "
            "(`tts-studio download whisper`). Unset: detected with it, else English.",
        },
        "languages[]": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Possible languages: one is used as `language`; several keep detection to them.",
        },
        "prompt": {"type": "string", "description": "Whisper's initial prompt (style, spellings)."},
        "keywords[]": {
            "type": "array",
            "items": {"type": "string", "maxLength": 200},
            "description": "Words or phrases to bias recognition towards (Whisper hotwords).",
        },
        "chunking_strategy": {
            "description": '"auto", or chunking_strategy[type]=server_vad with [prefix_padding_ms], '
            "[silence_duration_ms], [threshold]: silences are cut (VAD) before Whisper hears the audio.",
            "oneOf": [
                {"type": "string", "enum": ["auto"]},
                {
                    "type": "object",
                    "required": ["type"],
                    "properties": {
                        "type": {"type": "string", "enum": ["server_vad"]},
                        "prefix_padding_ms": {"type": "integer", "minimum": 0, "maximum": 10000},
                        "silence_duration_ms": {"type": "integer", "minimum": 0, "maximum": 10000},
                        "threshold": {"type": "number", "minimum": 0, "maximum": 1},
                    },
                },
            ],
        },
        "response_format": {
            "type": "string",
            "enum": ["json", "text", "srt", "verbose_json", "vtt"],
            "description": "diarized_json is refused (no speaker diarization here).",
        },
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
        "timestamp_granularities[]": {"type": "array", "items": {"type": "string", "enum": ["word", "segment"]}},
        "stream": {"type": "boolean"},
    },
)
