"""Designed voices over HTTP: `POST /v1/audio/voices/design` (describe a voice, get candidates as base64 WAV)
and `POST /v1/audio/voices/design/{candidate_id}/save` (keep one as a library voice, marked as designed).
Both take JSON or a form; without an engine that can design (VoxCPM2) the first is a 503 saying what to install.
"""

from __future__ import annotations

import base64
from typing import Any

import anyio
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tts_studio.api.body import read_object
from tts_studio.api.deps import SettingsDep, VoicesDep
from tts_studio.api.errors import validation_error
from tts_studio.api.forms import read_form
from tts_studio.api.openapi_bodies import json_body
from tts_studio.services.library import MAX_LANGUAGE, MAX_NAME
from tts_studio.services.voice_design import MAX_CANDIDATES, MAX_INSTRUCTIONS, MAX_TEXT, Candidate, VoiceDesigner

router = APIRouter()


class DesignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instructions: str = Field(..., max_length=MAX_INSTRUCTIONS, description="The voice, described in words.")
    text: str | None = Field(None, max_length=MAX_TEXT, description="What the candidates say (default: a sample).")
    n: int = Field(1, description=f"How many candidates, 1 to {MAX_CANDIDATES}.")
    model: str | None = Field(None, description="An engine with a design mode (default: VoxCPM2).")
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="The first candidate's seed; the next add one.")


class SaveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=MAX_NAME, description="The voice's name (default: from the description).")
    language: str | None = Field(None, max_length=MAX_LANGUAGE)


_SAVE_OPENAPI = json_body(SaveBody)
_SAVE_OPENAPI["requestBody"]["required"] = False  # every field has a default


async def _fields(request: Request, max_bytes: int) -> dict[str, Any]:
    """The body as a dict: JSON, or a form (multipart or urlencoded); an empty body is {}."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await read_form(request, max_bytes)
        return {key: value for key, value in form.items() if isinstance(value, str)}
    if not media_type and request.headers.get("content-length", "0") == "0":
        return {}
    return (await read_object(request, max_bytes))[1]


def _parse(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(list(exc.errors())) from None


def _candidate_json(candidate: Candidate) -> dict[str, Any]:
    return {
        "id": candidate.id,
        "object": "audio.voice.candidate",
        "model": candidate.engine_id,
        "instructions": candidate.instructions,
        "text": candidate.text,
        "seed": candidate.seed,
        "duration": candidate.duration,
        "format": "wav",
        "audio": base64.b64encode(candidate.audio).decode("ascii"),
        "created_at": int(candidate.created_at),
        "expires_at": candidate.expires_at,
        "save_url": f"/v1/audio/voices/design/{candidate.id}/save",
    }


def designer(request: Request) -> VoiceDesigner:
    services = request.app.state.services
    return VoiceDesigner(services.jobs, services.voices.library, services.designs)


@router.post("/audio/voices/design", openapi_extra=json_body(DesignBody))
async def design_voice(request: Request, settings: SettingsDep) -> dict[str, Any]:
    """Candidates for a described voice, each the sample text spoken with its own seed (base64 WAV)."""
    body: DesignBody = _parse(DesignBody, await _fields(request, settings.max_body_bytes))
    candidates = await designer(request).design(body.instructions, body.text, body.n, body.model, body.seed)
    return {"object": "list", "data": [_candidate_json(c) for c in candidates]}


@router.post("/audio/voices/design/{candidate_id}/save", openapi_extra=_SAVE_OPENAPI)
async def save_designed_voice(
    candidate_id: str, request: Request, voices: VoicesDep, settings: SettingsDep
) -> dict[str, Any]:
    """Keep a candidate as a library voice: its audio the reference, its text the transcript."""
    body: SaveBody = _parse(SaveBody, await _fields(request, settings.max_body_bytes))
    voice = await anyio.to_thread.run_sync(lambda: designer(request).save(candidate_id, body.name, body.language))
    return {**voices.entry(voice.id), "source": voice.source, "design": voice.design}
