"""`GET /health`: liveness plus the state of each component."""

from __future__ import annotations

import time
from typing import Any

import anyio
from fastapi import APIRouter, Request

from tts_studio import __version__
from tts_studio.api.deps import ChatDep, ManagerDep, VoicesDep

router = APIRouter()


@router.get("/health")
@router.get("/healthz", include_in_schema=False)  # the Chatterbox-server spelling
async def health(request: Request, manager: ManagerDep, voices: VoicesDep, chat: ChatDep) -> dict[str, Any]:
    if chat.configured:
        with anyio.move_on_after(1.0):  # refreshes reachability (cached briefly); never holds up a probe
            await chat.models()
    engines, voice_count = await anyio.to_thread.run_sync(lambda: (manager.status(), len(voices.entries())))
    return {
        "status": "ok",
        "version": __version__,
        "uptime_seconds": round(time.monotonic() - request.app.state.started, 1),
        "engines": engines,  # (both read the disk: off the event loop, as when the route was sync)
        "active_requests": request.app.state.speech_slots.active,
        "voices": voice_count,
        "transcriber": request.app.state.transcriber.status(),
        "auth": request.app.state.settings.api_key is not None,
        "chat_upstream": chat.health(),
    }
