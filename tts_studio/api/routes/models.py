"""`GET /v1/models`, `GET /v1/models/{id}` and `GET /v1/audio/models` (Open WebUI's shape)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tts_studio.api.deps import ManagerDep, SettingsDep
from tts_studio.config import Settings
from tts_studio.engines.manager import ModelManager
from tts_studio.errors import ModelNotFound

router = APIRouter()
CREATED = 1767225600  # 2026-01-01: a fixed date, so listings are stable


def model_entries(settings: Settings, manager: ModelManager) -> list[dict[str, Any]]:
    """OpenAI aliases whose engine exists, then the engines themselves."""
    entries: list[dict[str, Any]] = []
    for alias, engine_id in settings.model_map.items():
        if engine_id in manager.engine_ids:
            entries.append(
                {
                    "id": alias,
                    "object": "model",
                    "created": CREATED,
                    "owned_by": "tts-studio",
                    "engine": engine_id,
                }
            )
    for engine_id in manager.engine_ids:
        info = manager.info(engine_id)
        entries.append(
            {
                "id": engine_id,
                "object": "model",
                "created": CREATED,
                "owned_by": "tts-studio",
                "engine": engine_id,
                "name": info.name,
                "description": info.description,
                "sample_rate": info.sample_rate,
                "languages": list(info.languages),
                "voices": list(info.voices),
                "streaming": info.streaming,
                "cloning": info.cloning,
                "instructions": info.instructions,
                "speed_range": info.speed_range,
                "parameters": [p.name for p in info.params],
            }
        )
    return entries


@router.get("/models")
def list_models(settings: SettingsDep, manager: ManagerDep) -> dict[str, Any]:
    return {"object": "list", "data": model_entries(settings, manager)}


@router.get("/models/{model_id:path}")
def get_model(model_id: str, settings: SettingsDep, manager: ManagerDep) -> dict[str, Any]:
    for entry in model_entries(settings, manager):
        if entry["id"] == model_id:
            return entry
    if model_id.startswith("gpt-4o-mini-tts-") and settings.engine_for_model(model_id) in manager.engine_ids:
        return {
            "id": model_id,
            "object": "model",
            "created": CREATED,
            "owned_by": "tts-studio",
            "engine": settings.engine_for_model(model_id),
        }
    raise ModelNotFound(f"The model '{model_id}' does not exist.", param="model")


@router.get("/audio/models")
def list_audio_models(settings: SettingsDep, manager: ManagerDep) -> dict[str, Any]:
    return {"models": [{"id": e["id"], "name": e.get("name", e["id"])} for e in model_entries(settings, manager)]}
