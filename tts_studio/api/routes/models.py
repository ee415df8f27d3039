"""`GET /v1/models`, `GET /v1/models/{id}` and `GET /v1/audio/models` (Open WebUI's shape)."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter

from tts_studio.api.deps import ChatDep, SettingsDep, SpeechDep
from tts_studio.errors import ModelNotFound, StudioError
from tts_studio.services.speech import SpeechService

router = APIRouter()
CREATED = 1767225600  # 2026-01-01: a fixed date, so listings are stable


def _model(model_id: str, owned_by: str) -> dict[str, Any]:
    """OpenAI's Model object; `shutdown_date` (the 2026 SDK's field) is null: a local model is never retired."""
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": owned_by, "shutdown_date": None}


def _alias(model_id: str, engine_id: str) -> dict[str, Any]:
    return {**_model(model_id, "tts-studio"), "engine": engine_id}


def model_entries(speech: SpeechService) -> list[dict[str, Any]]:
    """OpenAI aliases served by an installed engine, then the installed engines themselves."""
    entries: list[dict[str, Any]] = []
    for model_id, engine_id in speech.served_models():
        if model_id != engine_id:
            entries.append(_alias(model_id, engine_id))
            continue
        info = speech.manager.info(engine_id)
        entries.append(
            {
                **_alias(engine_id, engine_id),
                "name": info.name,
                "description": info.description,
                "sample_rate": info.sample_rate,
                "languages": list(info.languages),
                "voices": list(info.voices),
                "streaming": info.streaming,
                "cloning": info.cloning,
                "instructions": info.instructions,
                "speed_range": info.speed_range,
                "gpu": info.gpu,
                "parameters": {
                    p.name: {
                        "type": p.kind.__name__,
                        "default": p.default,
                        "minimum": p.minimum,
                        "maximum": p.maximum,
                        "description": p.description,
                    }
                    for p in info.params
                },
            }
        )
    return entries


def _chat_entry(model_id: str) -> dict[str, Any]:
    return _model(model_id, "chat-upstream")


@router.get("/models")
async def list_models(speech: SpeechDep, chat: ChatDep) -> dict[str, Any]:
    """The TTS models, then the chat upstream's models (cached briefly; none while it is down)."""
    entries = await anyio.to_thread.run_sync(model_entries, speech)  # installed checks probe the disk
    ours = {entry["id"] for entry in entries}
    entries += [_chat_entry(model_id) for model_id in await chat.models() if model_id not in ours]
    return {"object": "list", "data": entries}


@router.get("/models/{model_id:path}")
async def get_model(model_id: str, speech: SpeechDep, settings: SettingsDep, chat: ChatDep) -> dict[str, Any]:
    for entry in await anyio.to_thread.run_sync(model_entries, speech):
        if entry["id"] == model_id:
            return entry
    if model_id in await chat.models():
        return _chat_entry(model_id)
    if settings.alias_for(model_id) is not None:  # ids extending a key: gpt-realtime-2.1, dated ids
        try:
            engine_id, _ = speech.resolve_model(model_id)
        except StudioError:
            pass
        else:
            return _alias(model_id, engine_id)
    raise ModelNotFound(f"The model '{model_id}' does not exist.", param="model")


@router.get("/audio/models")
def list_audio_models(speech: SpeechDep) -> dict[str, Any]:
    return {"models": [{"id": e["id"], "name": e.get("name", e["id"])} for e in model_entries(speech)]}
