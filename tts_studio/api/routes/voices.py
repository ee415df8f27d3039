"""`GET /v1/audio/voices` (Open WebUI's `{"voices": [{"id", "name"}]}` shape) and one voice by id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tts_studio.api.deps import VoicesDep
from tts_studio.errors import NotFound

router = APIRouter()


@router.get("/audio/voices")
def list_voices(voices: VoicesDep) -> dict[str, Any]:
    return {"object": "list", "voices": [v.as_json() for v in voices.list()]}


@router.get("/audio/voices/{voice_id}")
def get_voice(voice_id: str, voices: VoicesDep) -> dict[str, Any]:
    entry = voices.get(voice_id)
    if entry is None:
        raise NotFound(f"The voice '{voice_id}' does not exist.", param="voice_id", code="voice_not_found")
    return entry.as_json()
