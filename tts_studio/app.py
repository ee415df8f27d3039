"""`create_app(settings)`: the FastAPI application; the lifespan owns the shared services."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial

import anyio
from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse, RedirectResponse

from tts_studio import __version__
from tts_studio.api.body_timeout import BodyTimeout
from tts_studio.api.deps import require_api_key
from tts_studio.api.errors import install_error_handlers
from tts_studio.api.guard import BrowserGuard, BrowserPolicy
from tts_studio.api.request_id import RequestIdMiddleware
from tts_studio.api.routes import (
    chat,
    docs,
    health,
    models,
    projects,
    realtime,
    responses,
    speech,
    transcriptions,
    voice_conversion,
    voice_design,
    voices,
)
from tts_studio.config import Settings
from tts_studio.engines.registry import EngineSpec, default_registry
from tts_studio.offline import disable_telemetry
from tts_studio.services.transcription import Transcriber
from tts_studio.studio import build_services


def create_app(
    settings: Settings | None = None,
    registry: Mapping[str, EngineSpec] | None = None,
    *,
    transcriber: Transcriber | None = None,
    owner: bool = True,
) -> FastAPI:
    """Build the app. Nothing loads until first use; engines come from `registry` (default: all known).
    `transcriber`: Whisper elsewhere (Ray); `owner=False`: one of several replicas sharing the data of an owner
    (Ray's speech replicas): it resumes no project renders and serves no Wyoming."""
    settings = settings or Settings()
    disable_telemetry(settings.cache_dir)
    engines = dict(registry if registry is not None else default_registry())

    services = build_services(settings, engines, transcriber, owner)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.manager = services.manager
        app.state.transcriber = services.transcriber
        app.state.voices = services.voices
        app.state.speech = services.speech
        app.state.embedded_voices = services.embedded_voices
        app.state.speech_slots = services.speech_slots
        app.state.transcription_slots = services.transcription_slots
        app.state.chat = services.chat
        app.state.services = services
        app.state.started = time.monotonic()
        if owner:
            services.projects.renderer.start()  # resumes renders a stop interrupted
        wyoming = None
        if settings.wyoming_port is not None and owner:
            from tts_studio.wyoming_server import WyomingServer  # the wyoming package only when asked for

            wyoming = WyomingServer(services)
            await wyoming.start()
        try:
            async with mcp.session_manager.run():
                yield
        finally:
            # Bounded, whatever clients left behind: SIGTERM ends the studio within its graceful timeout.
            services.manager.close()  # wakes everyone waiting for a device (never blocks)
            services.installer.cancel()  # an engine install in progress stops with the studio
            if wyoming is not None:
                await wyoming.stop()
            await services.chat.aclose()
            own = anyio.CapacityLimiter(1)  # not the default pool, which abandoned streams may fill
            await anyio.to_thread.run_sync(services.projects.renderer.shutdown, limiter=own)
            await anyio.to_thread.run_sync(partial(services.manager.unload_all, timeout=2.0), limiter=own)
            services.transcriber.unload()

    # No CDN pages: /docs is our own local page (routes/docs.py), /redoc is off.
    app = FastAPI(
        title="TTS Studio", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    install_error_handlers(app)
    # Inside the request id (the 408 carries one), outside every route and mount that reads a body.
    app.add_middleware(BodyTimeout, timeout=settings.body_timeout_seconds)
    app.add_middleware(RequestIdMiddleware)

    protected = [Depends(require_api_key)]
    for module in (speech, voice_conversion, models, voice_design, voices, transcriptions, chat, responses, projects):
        app.include_router(module.router, prefix="/v1", dependencies=protected)
    app.include_router(docs.router, dependencies=protected)
    app.include_router(health.router)
    app.include_router(realtime.router, prefix="/v1")  # WebSocket: checks the key itself (handshake)
    from tts_studio.mcp_server import mount_mcp  # the MCP SDK (about 0.5 s) only when an app is built

    mcp = mount_mcp(app, services)  # /mcp, behind the key
    if settings.enable_ui:
        from tts_studio.ui.app import ASSETS, UI_PATH, mount_ui  # gradio is imported only when the UI is on

        @app.get("/", include_in_schema=False)
        def home() -> RedirectResponse:
            return RedirectResponse(f"{UI_PATH}/")

        @app.get("/favicon.ico", include_in_schema=False)
        def favicon() -> FileResponse:
            return FileResponse(ASSETS / "favicon.svg", media_type="image/svg+xml")

        app = mount_ui(app, services)
    # Added last, so outermost: Host/Origin policy and CORS run before anything else sees the request.
    app.add_middleware(
        BrowserGuard, policy=BrowserPolicy(settings.host, settings.allowed_hosts, settings.allowed_origins)
    )
    return app
