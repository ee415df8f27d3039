"""The voice library over HTTP: list, get, upload, edit, delete, preview audio, OpenAI-name mapping."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from tts_studio.api.body import read_json
from tts_studio.api.deps import SettingsDep, VoicesDep
from tts_studio.api.forms import bool_field, file_field, read_form, text_field
from tts_studio.api.openapi_bodies import VOICE_UPLOAD_BODY, json_body
from tts_studio.errors import InvalidRequest
from tts_studio.services.library import MAX_LANGUAGE, MAX_NAME, MAX_TRANSCRIPT

router = APIRouter()


class VoicePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=MAX_NAME)
    transcript: str | None = Field(None, max_length=MAX_TRANSCRIPT)
    language: str | None = Field(None, max_length=MAX_LANGUAGE)


class VoiceAssignment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    voice: str | None = Field(..., description="A voice id or name; null restores the default.")


@router.get("/audio/voices")
@router.get("/voices", include_in_schema=False)  # the alias VoxCPM all-in-one clients call
def list_voices(voices: VoicesDep, all: bool = False) -> dict[str, Any]:
    """Voices an installed engine can speak (each with those engines); `?all=true`: every voice, with
    `speakable` and the `reason` when it is not."""
    return {"object": "list", "voices": voices.entries(include_unspeakable=all)}


@router.post("/audio/voices", openapi_extra=VOICE_UPLOAD_BODY)
async def create_voice(request: Request, voices: VoicesDep, settings: SettingsDep) -> dict[str, Any]:
    """OpenAI's multipart fields (`name`, `audio_sample`, `consent`) plus `transcript` and `language`."""
    form = await read_form(request, settings.voice_max_bytes)
    if (text_field(form, "type") or "audio_sample") != "audio_sample":
        raise InvalidRequest("Only voices from an audio sample can be created here.", param="type")
    upload = await file_field(form, ("audio_sample", "file", "audio"), settings.voice_max_bytes)
    name = text_field(form, "name", required=True)
    voice = await anyio.to_thread.run_sync(
        lambda: voices.library.add(
            name,
            upload.data,
            filename=upload.filename,
            language=text_field(form, "language") or "en",
            transcript=text_field(form, "transcript"),
            consent=bool_field(form, "consent"),
        )
    )
    return voices.entry(voice.id)


@router.get("/audio/voice_map")
def get_voice_map(voices: VoicesDep) -> dict[str, Any]:
    return {"object": "list", "data": [v for v in voices.entries() if v["kind"] == "openai"]}


@router.put("/audio/voice_map/{name}", openapi_extra=json_body(VoiceAssignment))
async def assign_voice(name: str, request: Request, voices: VoicesDep, settings: SettingsDep) -> dict[str, Any]:
    body = await read_json(request, VoiceAssignment, settings.max_body_bytes)
    return await anyio.to_thread.run_sync(voices.assign, name, body.voice)  # an fsynced write


@router.delete("/audio/voice_map/{name}")
def reset_voice(name: str, voices: VoicesDep) -> dict[str, Any]:
    return voices.assign(name, None)


@router.get("/audio/voices/{voice_id}")
def get_voice(voice_id: str, voices: VoicesDep) -> dict[str, Any]:
    return voices.entry(voice_id)


@router.get("/audio/voices/{voice_id}/audio", response_class=FileResponse)
def voice_audio(voice_id: str, voices: VoicesDep, original: bool = False) -> FileResponse:
    """The reference audio (normalised WAV), or with `?original=true` the file as uploaded."""
    path = voices.library.audio_path(voice_id, original=original)
    media = "audio/wav" if path.suffix == ".wav" else "audio/flac" if path.suffix == ".flac" else None
    return FileResponse(path, media_type=media or "application/octet-stream", filename=path.name)


@router.patch("/audio/voices/{voice_id}", openapi_extra=json_body(VoicePatch))
async def edit_voice(voice_id: str, request: Request, voices: VoicesDep, settings: SettingsDep) -> dict[str, Any]:
    patch = await read_json(request, VoicePatch, settings.max_body_bytes)
    await anyio.to_thread.run_sync(  # an fsynced write
        lambda: voices.library.update(voice_id, name=patch.name, transcript=patch.transcript, language=patch.language)
    )
    return voices.entry(voice_id)


@router.delete("/audio/voices/{voice_id}")
def delete_voice(voice_id: str, voices: VoicesDep) -> dict[str, Any]:
    voice = voices.delete_voice(voice_id)
    return {"id": voice.id, "object": "audio.voice.deleted", "deleted": True}
