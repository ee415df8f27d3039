"""The MCP server through the official `mcp` client: Streamable HTTP at /mcp and stdio (`tts-studio mcp`)."""

from __future__ import annotations

import base64
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import av
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import PARAGRAPH, LiveServer


def _seconds(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        return sum(frame.samples for frame in container.decode(audio=0)) / 24000


def _run(fn: Callable[[], Any]) -> Any:
    return anyio.run(fn)


def _text(result: Any) -> str:
    return "".join(block.text for block in result.content if block.type == "text")


def test_tools_speak_transcribe_and_list(server: LiveServer) -> None:
    async def go() -> tuple[Any, ...]:
        async with Client(f"{server.url}/mcp") as client:
            tools = await client.list_tools()
            spoken = await client.call_tool("speak", {"text": PARAGRAPH, "voice": "nova"})
            audio = next(block for block in spoken.content if block.type == "audio")
            heard = await client.call_tool("transcribe", {"audio_base64": audio.data})
            voices = await client.call_tool("list_voices", {})
            models = await client.call_tool("list_models", {})
            return tools, spoken, audio, heard, voices, models

    tools, spoken, audio, heard, voices, models = _run(go)
    assert {t.name for t in tools.tools} == {"speak", "transcribe", "convert", "list_voices", "list_models"}
    assert not spoken.is_error and audio.mime_type == "audio/mpeg"
    mp3 = base64.b64decode(audio.data)
    assert _seconds(mp3) > 5
    saved = Path(_text(spoken).rsplit("saved to ", 1)[1])
    assert saved.read_bytes() == mp3  # the file in the data dir is the audio that came back
    assert "quick brown fox" in _text(heard).lower()
    assert {"alloy", "nova", "heart"} <= {v["id"] for v in voices.structured_content["result"]}
    assert {"id": "tts-1", "engine": "hibari"} in models.structured_content["result"]


def test_tool_errors_are_mcp_errors_with_a_clear_message(server: LiveServer) -> None:
    async def go() -> tuple[Any, Any, Any]:
        async with Client(f"{server.url}/mcp") as client:
            voice = await client.call_tool("speak", {"text": "Hi.", "voice": "no-such-voice"})
            fmt = await client.call_tool("speak", {"text": "Hi.", "format": "xyz"})
            garbage = await client.call_tool("transcribe", {"audio_base64": "not base64!"})
            return voice, fmt, garbage

    voice, fmt, garbage = _run(go)
    assert voice.is_error and "no-such-voice" in _text(voice)
    assert fmt.is_error and "'format'" in _text(fmt)
    assert garbage.is_error and "base64" in _text(garbage)


def test_the_key_guards_mcp(live_server: Callable[..., LiveServer]) -> None:
    live = live_server(api_key="s3cret")
    hello = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    refused = httpx.post(f"{live.url}/mcp", json=hello, headers={"Accept": "application/json, text/event-stream"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    foreign = httpx.post(f"{live.url}/mcp", json=hello, headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403

    async def go() -> Any:
        async with (
            httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret"}) as http,
            Client(streamable_http_client(f"{live.url}/mcp", http_client=http)) as client,
        ):
            return await client.call_tool("list_models", {})

    assert not _run(go).is_error


@pytest.mark.slow
def test_stdio_server(tmp_path: Path) -> None:
    env = {"TTS_STUDIO_DATA_DIR": str(tmp_path / "d"), "TTS_STUDIO_CACHE_DIR": str(tmp_path / "c"),
           "TTS_STUDIO_LOG_DIR": str(tmp_path / "l"), "HF_HUB_OFFLINE": "1"}  # fmt: skip
    params = StdioServerParameters(command=sys.executable, args=["-m", "tts_studio", "mcp"], env=env)

    async def go() -> Any:
        async with Client(params) as client:
            return await client.call_tool("speak", {"text": "Hello over standard input.", "format": "wav"})

    result = _run(go)
    audio = next(block for block in result.content if block.type == "audio")
    assert audio.mime_type == "audio/wav" and _seconds(base64.b64decode(audio.data)) > 1


def test_tools_share_the_admission_limit(live_server: Callable[..., LiveServer]) -> None:
    live = live_server(max_active_requests=1)
    live.app.state.speech_slots.take()  # an HTTP request holds the only slot

    async def go() -> Any:
        async with Client(f"{live.url}/mcp") as client:
            return await client.call_tool("speak", {"text": "Hi."})

    try:
        refused = _run(go)
    finally:
        live.app.state.speech_slots.give_back()
    assert refused.is_error and "Too many speech requests" in _text(refused)
    assert not _run(go).is_error  # and free again
