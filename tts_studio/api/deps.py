"""Dependencies: routes read shared state from `request.app.state`, never from globals."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from tts_studio.config import Settings
from tts_studio.engines.manager import ModelManager
from tts_studio.errors import Unauthorized
from tts_studio.services.chat import ChatUpstream
from tts_studio.services.speech import SpeechService
from tts_studio.services.voices import VoiceCatalog


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_manager(request: Request) -> ModelManager:
    manager: ModelManager = request.app.state.manager
    return manager


def get_speech(request: Request) -> SpeechService:
    speech: SpeechService = request.app.state.speech
    return speech


def get_voices(request: Request) -> VoiceCatalog:
    voices: VoiceCatalog = request.app.state.voices
    return voices


def get_chat(request: Request) -> ChatUpstream:
    chat: ChatUpstream = request.app.state.chat
    return chat


SettingsDep = Annotated[Settings, Depends(get_settings)]
ManagerDep = Annotated[ModelManager, Depends(get_manager)]
SpeechDep = Annotated[SpeechService, Depends(get_speech)]
VoicesDep = Annotated[VoiceCatalog, Depends(get_voices)]
ChatDep = Annotated[ChatUpstream, Depends(get_chat)]


def key_accepted(settings: Settings, authorization: str | None) -> bool:
    """Whether an `Authorization` header carries the API key (always, when the studio has none)."""
    expected = settings.key
    if expected is None:
        return True
    scheme, _, token = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode())


def unauthorized() -> Unauthorized:
    return Unauthorized(
        "Incorrect or missing API key. Send it as 'Authorization: Bearer <key>'.",
        headers={"WWW-Authenticate": "Bearer"},
    )


def require_api_key(request: Request, settings: SettingsDep) -> None:
    """With an API key configured, demand `Authorization: Bearer <key>`; otherwise accept anything."""
    if not key_accepted(settings, request.headers.get("authorization")):
        raise unauthorized()
