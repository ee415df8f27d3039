"""/v1/models, /v1/models/{id}, /v1/audio/models, /v1/audio/voices and /health."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI

from tests.conftest import InProcess


def test_models_list_shape(sdk: OpenAI, app_client: InProcess) -> None:
    ids = [m.id for m in sdk.models.list()]
    assert {"tts-1", "tts-1-hd", "gpt-4o-mini-tts", "hibari"} <= set(ids)
    raw = app_client.get("/v1/models").json()
    assert raw["object"] == "list" and isinstance(raw["data"], list)
    for model in raw["data"]:
        assert model["object"] == "model" and isinstance(model["created"], int) and model["owned_by"]


def test_model_by_id(sdk: OpenAI) -> None:
    assert sdk.models.retrieve("tts-1").id == "tts-1"
    assert sdk.models.retrieve("gpt-4o-mini-tts-2025-12-15").id == "gpt-4o-mini-tts-2025-12-15"
    hibari = sdk.models.retrieve("hibari")
    assert hibari.model_extra is not None and hibari.model_extra["sample_rate"] == 24000
    with pytest.raises(openai.NotFoundError) as info:
        sdk.models.retrieve("whisper-9")
    assert info.value.code == "model_not_found"


def test_audio_models_open_webui_shape(app_client: InProcess) -> None:
    body = app_client.get("/v1/audio/models").json()
    assert all("id" in m for m in body["models"])
    assert "tts-1" in [m["id"] for m in body["models"]]


def test_health_reports_components(app_client: InProcess, sdk: OpenAI) -> None:
    sdk.audio.speech.create(model="tts-1", voice="alloy", input="Warm up.", response_format="pcm")
    health = app_client.get("/health").json()
    assert health["status"] == "ok"
    assert health["engines"]["hibari"]["state"] == "loaded"
    assert health["engines"]["hibari"]["device"] == "cpu"
    assert health["voices"] >= 14 and health["auth"] is False
