"""`/v1/realtime` WebSocket: the handshake (API key as OpenAI's SDKs send it), then JSON events to a
RealtimeSession (tts_studio/realtime.py). The browser guard has already checked Origin and Host."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from tts_studio.api.body import check_json
from tts_studio.api.deps import key_accepted
from tts_studio.errors import StudioError
from tts_studio.realtime import RealtimeSession

log = logging.getLogger(__name__)
router = APIRouter()
KEY_PROTOCOL = "openai-insecure-api-key."  # browsers cannot set headers: the key rides in a subprotocol
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def _authorization(websocket: WebSocket) -> tuple[str | None, str | None]:
    """(Authorization header to check, subprotocol to accept)."""
    header = websocket.headers.get("authorization")
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    chosen = "realtime" if "realtime" in offered else None
    for protocol in offered:
        if protocol.startswith(KEY_PROTOCOL) and header is None:
            header = f"Bearer {protocol[len(KEY_PROTOCOL) :]}"
    return header, chosen


@router.websocket("/realtime")
async def realtime(websocket: WebSocket) -> None:
    app = websocket.app
    header, subprotocol = _authorization(websocket)
    if not key_accepted(app.state.settings, header):
        await websocket.close(code=1008, reason="Incorrect or missing API key.")  # before accept: HTTP 403
        return
    model = websocket.query_params.get("model") or "gpt-realtime"
    await websocket.accept(subprotocol=subprotocol)

    async def send(event: dict[str, Any]) -> None:
        await websocket.send_text(json.dumps(event, separators=(",", ":")))

    beta = "realtime=v1" in websocket.headers.get("openai-beta", "")
    session = RealtimeSession(app.state.services, model, send, beta=beta)
    try:
        await session.start()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None and message.get("bytes") is not None:
                text = message["bytes"].decode("utf-8", "replace")
            if text is None or len(text) > MAX_MESSAGE_BYTES:
                await session.error("Send JSON text frames up to 16 MiB.", "invalid_event")
                continue
            try:
                event = json.loads(text)
                check_json(event)  # the HTTP body guard's limits (nesting, unpaired surrogates) apply here too
            except (ValueError, RecursionError):
                await session.error("The event is not valid JSON.", "invalid_json")
                continue
            except StudioError as exc:
                await session.error(exc.message, exc.code or "invalid_json")
                continue
            await session.handle(event)
    except WebSocketDisconnect:
        pass
    finally:
        await session.close()
