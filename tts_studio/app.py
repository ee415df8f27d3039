"""`create_app(settings)`: the FastAPI application; the lifespan owns the shared services."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from tts_studio import __version__
from tts_studio.api.admission import RequestSlots
from tts_studio.api.deps import require_api_key
from tts_studio.api.errors import install_error_handlers
from tts_studio.api.request_id import RequestIdMiddleware
from tts_studio.api.routes import health, models, speech, transcriptions, voices
from tts_studio.audio.decode import AudioLimits
from tts_studio.config import Settings
from tts_studio.engines.manager import ModelManager
from tts_studio.engines.registry import EngineSpec, default_registry
from tts_studio.offline import disable_telemetry
from tts_studio.services.library import VoiceLibrary
from tts_studio.services.speech import SpeechService
from tts_studio.services.transcription import Transcriber
from tts_studio.services.voices import VoiceCatalog, VoiceMap


def create_app(settings: Settings | None = None, registry: Mapping[str, EngineSpec] | None = None) -> FastAPI:
    """Build the app. Nothing loads until first use; engines come from `registry` (default: all known)."""
    settings = settings or Settings()
    disable_telemetry(settings.cache_dir)
    engines = dict(registry if registry is not None else default_registry())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        manager = ModelManager(engines, settings)
        transcriber = Transcriber()
        library = VoiceLibrary(
            settings.data_dir / "voices",
            settings.bundled_voices_dir,
            AudioLimits(max_bytes=settings.voice_max_bytes, max_seconds=settings.voice_max_seconds),
            transcriber.for_library if settings.auto_transcribe else None,
        )
        bundled_map = settings.bundled_voices_dir / "openai_voice_map.json" if settings.bundled_voices_dir else None
        mapping = VoiceMap(bundled_map, settings.data_dir / "voice_map.json", settings.voice_map)
        installed = {eid: spec.info for eid, spec in engines.items() if spec.installed}
        catalog = VoiceCatalog(installed, library, mapping)
        app.state.settings = settings
        app.state.manager = manager
        app.state.transcriber = transcriber
        app.state.voices = catalog
        app.state.speech = SpeechService(manager, catalog, settings)
        app.state.speech_slots = RequestSlots(settings.max_active_requests)
        app.state.started = time.monotonic()
        try:
            yield
        finally:
            manager.unload_all()

    app = FastAPI(title="TTS Studio", version=__version__, lifespan=lifespan)
    install_error_handlers(app)

    app.add_middleware(RequestIdMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["*"],  # Starlette echoes the requested headers, Authorization included
            expose_headers=["x-request-id"],
        )

    protected = [Depends(require_api_key)]
    for module in (speech, models, voices, transcriptions):
        app.include_router(module.router, prefix="/v1", dependencies=protected)
    app.include_router(health.router)
    return app
