"""The MCP server (official `mcp` SDK) on the studio's own services: tools `speak`, `transcribe`, `convert`,
`list_voices`, `list_models`. Served as Streamable HTTP at /mcp (behind the API key when one is set, and
the browser guard like every route) and over stdio with `tts-studio mcp`."""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import AudioContent, TextContent
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tts_studio import __version__
from tts_studio.api.deps import key_accepted, unauthorized
from tts_studio.audio.decode import decode_audio
from tts_studio.audio.encode import FORMATS
from tts_studio.config import Settings
from tts_studio.errors import StudioError
from tts_studio.services.conversion import ConversionOrder
from tts_studio.services.library import atomic_write_bytes
from tts_studio.services.pipeline import Progress
from tts_studio.services.speech import SpeechOrder
from tts_studio.services.transcription import UPLOAD_LIMITS
from tts_studio.studio import Services


def build_mcp(services: Services) -> MCPServer:
    """The MCP server; every tool calls the same services as the HTTP API."""
    server: MCPServer = MCPServer(
        name="tts-studio",
        version=__version__,
        instructions="Local, private text-to-speech and speech-to-text. `speak` returns audio and saves a file; "
        "`list_voices` and `list_models` say what can be used.",
    )

    @server.tool(description="Speak text aloud. Returns the audio and saves it in the studio's data folder.")
    async def speak(text: str, voice: str = "alloy", model: str = "tts-1", format: str = "mp3") -> list[Any]:
        if format not in FORMATS:
            raise ToolError(f"'format' must be one of {', '.join(FORMATS)}.")
        try:  # one admitted speech job, as HTTP and Wyoming; a caller gone mid-way frees it at once
            data, job = await services.jobs.speak_all(SpeechOrder(model, text, voice), format)
        except StudioError as exc:
            raise ToolError(exc.message) from None
        return await _saved_audio(data, format, "speech", f"{job.engine_id}, {job.voice}", job.progress)

    async def _saved_audio(data: bytes, format: str, kind: str, source: str, progress: Progress) -> list[Any]:
        """The audio as MCP content, also saved as a file in the data folder."""
        noun = "speech" if kind == "speech" else "converted speech"
        folder = services.settings.data_dir / "mcp"
        path = folder / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}.{FORMATS[format].extension}"
        await anyio.to_thread.run_sync(lambda: atomic_write_bytes(path, data))
        return [
            AudioContent(type="audio", data=base64.b64encode(data).decode("ascii"), mime_type=FORMATS[format].mime),
            TextContent(type="text", text=f"{progress.audio_seconds:.1f} s of {noun} ({source}); saved to {path}"),
        ]

    @server.tool(
        description="Transcribe speech: audio as base64 (wav, mp3, flac, ogg, m4a, webm), and optionally its "
        "language (ISO-639-1; languages other than English need the multilingual Whisper: tts-studio download "
        "whisper)."
    )
    async def transcribe(audio_base64: str, language: str | None = None) -> str:
        try:
            data = base64.b64decode(audio_base64.split(",", 1)[-1], validate=True)
        except (binascii.Error, ValueError):
            raise ToolError("'audio_base64' is not valid base64.") from None
        try:
            with services.transcription_slots.held():
                audio = await anyio.to_thread.run_sync(lambda: decode_audio(data, UPLOAD_LIMITS, param="audio_base64"))
                result = await anyio.to_thread.run_sync(lambda: services.transcriber.transcribe(audio, language))
        except StudioError as exc:
            raise ToolError(exc.message) from None
        return result.text

    @server.tool(
        description="Convert a recording into another voice, keeping its words and timing: audio as base64 (wav, "
        "mp3, flac, ogg, m4a, webm) and a library voice id or name (or an OpenAI voice name). Returns the audio "
        "and saves it in the studio's data folder."
    )
    async def convert(audio_base64: str, voice: str, model: str | None = None, format: str = "mp3") -> list[Any]:
        if format not in FORMATS:
            raise ToolError(f"'format' must be one of {', '.join(FORMATS)}.")
        try:
            data = base64.b64decode(audio_base64.split(",", 1)[-1], validate=True)
        except (binascii.Error, ValueError):
            raise ToolError("'audio_base64' is not valid base64.") from None
        try:  # one admitted speech job over a ConversionOrder, as the HTTP route
            order = ConversionOrder(data, voice, model, param="audio_base64")
            converted, job = await services.jobs.speak_all(order, format)
        except StudioError as exc:
            raise ToolError(exc.message) from None
        return await _saved_audio(converted, format, "converted", f"{job.engine_id}, {job.voice}", job.progress)

    @server.tool(description="The voices that can be spoken here, with the engines that speak each.")
    def list_voices() -> list[dict[str, Any]]:
        return [
            {
                "id": v["id"],
                "name": v["name"],
                "kind": v["kind"],
                "engines": v["engines"],
                "language": v.get("language"),
            }
            for v in services.voices.entries()
        ]

    @server.tool(description="The model ids that can be asked for, and the engine each runs on.")
    def list_models() -> list[dict[str, str]]:
        return [{"id": model_id, "engine": engine_id} for model_id, engine_id in services.speech.served_models()]

    return server


class RequireKey:
    """ASGI wrapper: the API key in front of a mounted app (the MCP endpoint)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not key_accepted(self.settings, Headers(scope=scope).get("authorization")):
            refusal = unauthorized()
            await JSONResponse(refusal.body(), status_code=refusal.status, headers=refusal.headers)(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


def mount_mcp(app: FastAPI, services: Services) -> MCPServer:
    """Streamable HTTP at /mcp; the caller runs `server.session_manager.run()` in its lifespan. Host and
    Origin are checked by the studio's browser guard, so the SDK's own check is off."""
    server = build_mcp(services)
    http = server.streamable_http_app(
        streamable_http_path="/mcp",
        host=services.settings.host,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    for route in http.routes:
        assert isinstance(route, Route)
        app.router.routes.append(Route(route.path, RequireKey(route.app, services.settings), methods=route.methods))
    return server


def saved_files(services: Services) -> list[Path]:
    """The files `speak` saved (newest last)."""
    folder = services.settings.data_dir / "mcp"
    return sorted(folder.glob("speech-*"), key=lambda p: p.stat().st_mtime) if folder.exists() else []
