"""`POST /v1/responses` (audio subset): a TTS model speaks the input; a chat model (upstream) speaks the
LLM's reply. JSON with base64 audio, or the Responses SSE event sequence with `stream: true`."""

from __future__ import annotations

import base64
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from functools import partial
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from tts_studio.api.body import read_json
from tts_studio.api.deps import ChatDep, SettingsDep, SpeechDep
from tts_studio.api.openapi_bodies import json_body
from tts_studio.api.streaming import SSE_HEADERS, ClosingStreamingResponse, sse_frame, until_disconnected
from tts_studio.audio.encode import FORMATS
from tts_studio.errors import InvalidRequest, ModelNotFound, StudioError
from tts_studio.services.chat import ChatUpstream
from tts_studio.services.conversation import Audio, SpokenReply, Transcript, fixed_text, llm_messages
from tts_studio.services.speech import SpeechOrder, SpeechService

router = APIRouter()
_FORMAT_ALIASES = {"pcm16": "pcm", **{name: name for name in FORMATS}}
_UNSUPPORTED = ("tools", "previous_response_id", "conversation", "prompt", "background", "include")
_TEXT_PARTS = ("input_text", "output_text", "text")


class AudioOutput(BaseModel):
    """`audio`: how the reply is spoken (as in Chat Completions' audio output)."""

    model_config = ConfigDict(extra="ignore")
    voice: str | dict[str, str] = "alloy"
    format: str = Field("wav", json_schema_extra={"enum": list(_FORMAT_ALIASES)})


class ResponsesBody(BaseModel):
    """`POST /v1/responses`, the subset that produces speech."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]]
    instructions: str | None = Field(None, max_length=16384)
    modalities: list[str] | None = None
    audio: AudioOutput | None = None
    stream: bool = False
    max_output_tokens: int | None = Field(None, ge=1, description="Passed to the chat upstream as max_tokens.")


def _turns(body: ResponsesBody) -> list[tuple[str, str]]:
    """(role, text) turns from `input`; anything but text is refused, naming its place."""
    if isinstance(body.input, str):
        return [("user", body.input)]
    turns: list[tuple[str, str]] = []
    for i, item in enumerate(body.input):
        role = item.get("role", "user")
        if item.get("type", "message") != "message" or role not in ("user", "assistant", "system", "developer"):
            raise InvalidRequest(f"input[{i}]: only text messages are supported.", param=f"input[{i}].type")
        content = item.get("content")
        if isinstance(content, str):
            turns.append((role, content))
            continue
        if not isinstance(content, list):
            raise InvalidRequest(f"input[{i}].content must be text or a list of parts.", param=f"input[{i}].content")
        texts = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in _TEXT_PARTS or not isinstance(part.get("text"), str):
                raise InvalidRequest(
                    f"input[{i}].content[{j}]: '{kind}' is not supported; only text (input_text) is.",
                    param=f"input[{i}].content[{j}].type",
                )
            texts.append(part["text"])
        turns.append(("system" if role == "developer" else role, "\n".join(texts)))
    return turns


def _check_supported(body: ResponsesBody) -> None:
    for name in _UNSUPPORTED:
        value = (body.model_extra or {}).get(name)
        if value not in (None, False, [], {}):
            raise InvalidRequest(f"'{name}' is not supported by this server's Responses API.", param=name)
    for name in body.modalities or []:
        if name not in ("text", "audio"):
            raise InvalidRequest(f"modality '{name}' is not supported; use text and audio.", param="modalities")
    if body.audio is not None and body.audio.format not in _FORMAT_ALIASES:
        raise InvalidRequest(f"audio.format must be one of {', '.join(_FORMAT_ALIASES)}.", param="audio.format")


def _is_tts_model(speech: SpeechService, model: str) -> bool:
    try:
        speech.resolve_model(model)
    except ModelNotFound:
        return False
    except StudioError:
        return True  # a TTS id whose engine is missing: planning will say so
    return True


def _response(rid: str, body: ResponsesBody, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    item = {"type": "message", "id": f"msg_{rid[5:]}", "role": "assistant", "status": status, "content": content}
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "model": body.model,
        "status": status,
        "output": [item] if content or status != "in_progress" else [],
        "instructions": body.instructions,
        "parallel_tool_calls": False,
        "tool_choice": "none",
        "tools": [],
        "metadata": {},
        "error": None,
        "incomplete_details": None,
        "usage": None,
    }


class _Turn:
    """What one request asks for: the text source, whether it is spoken, and how."""

    def __init__(
        self, body: ResponsesBody, speech: SpeechService, chat: ChatUpstream, talk_model: str, limit: int
    ) -> None:
        _check_supported(body)
        turns = _turns(body)
        self.body = body
        self.tts = _is_tts_model(speech, body.model)
        if not self.tts and not chat.configured:
            raise ModelNotFound(
                f"The model '{body.model}' is not a TTS model, and no chat upstream is configured for chat models "
                "(set TTS_STUDIO_CHAT_UPSTREAM).",
                param="model",
            )
        self.spoken = self.tts or body.audio is not None or "audio" in (body.modalities or [])
        audio = body.audio or AudioOutput()
        self.format = _FORMAT_ALIASES[audio.format]
        voice = audio.voice.get("id", "") if isinstance(audio.voice, dict) else audio.voice
        if self.tts:
            text = "\n".join(t for role, t in turns if role != "system")
            self.order = SpeechOrder(model=body.model, input=text, voice=voice, instructions=body.instructions)
            self.source: AsyncIterator[str] = fixed_text(text)
            if not text.strip():
                raise InvalidRequest("'input' has no text to speak.", param="input", code="empty_string")
            if len(text) > limit:
                raise InvalidRequest(
                    f"'input' is {len(text)} characters long; the limit is {limit}.",
                    param="input",
                    code="string_above_max_length",
                )
        else:
            self.order = SpeechOrder(model=talk_model, input="", voice=voice)
            self.source = chat.reply(llm_messages(body.instructions, turns), body.model, body.max_output_tokens)


def _content(transcript: str, audio: bytes | None) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if audio is not None:
        parts.append(
            {"type": "output_audio", "audio": base64.b64encode(audio).decode("ascii"), "transcript": transcript}
        )
    parts.append({"type": "output_text", "text": transcript, "annotations": []})
    return parts


@router.post("/responses", openapi_extra=json_body(ResponsesBody), response_model=None)
async def create_response(request: Request, speech: SpeechDep, chat: ChatDep, settings: SettingsDep) -> Response:
    body = await read_json(request, ResponsesBody, settings.max_body_bytes)
    turn = await anyio.to_thread.run_sync(_Turn, body, speech, chat, settings.talk_model, settings.max_input_chars)
    rid = f"resp_{uuid.uuid4().hex}"
    reply = SpokenReply(request.app.state.services.jobs, turn.order, turn.source, turn.format, spoken=turn.spoken)
    events = reply.events()
    try:
        first = await until_disconnected(request, reply.cancel, anext(events, None))  # errors keep their status
        if not body.stream:
            items = [first] if first is not None else []
            if first is not None:
                items += await until_disconnected(request, reply.cancel, _rest(events))
            transcript = reply.spoken_text
            audio = b"".join(item.data for item in items if isinstance(item, Audio)) if turn.spoken else None
            return JSONResponse(_response(rid, body, "completed", _content(transcript, audio)))
    except BaseException:
        await _close(reply, events)
        raise
    finally:
        if not body.stream:
            await _close(reply, events)
    content = _events(rid, body, reply, first, events)
    return ClosingStreamingResponse(
        content,
        partial(_close, reply, events),
        settings.client_stall_seconds,
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


async def _rest(events: AsyncIterator[Transcript | Audio]) -> list[Transcript | Audio]:
    return [item async for item in events]


async def _close(reply: SpokenReply, events: AsyncGenerator[Transcript | Audio, None]) -> None:
    with anyio.CancelScope(shield=True):
        await reply.aclose()
        with contextlib.suppress(Exception):
            await events.aclose()


class _Sequence:
    """SSE frames with a strictly increasing `sequence_number` from 0."""

    def __init__(self) -> None:
        self.number = 0

    def frame(self, event: dict[str, Any]) -> bytes:
        event["sequence_number"] = self.number
        self.number += 1
        return sse_frame(event, event["type"])


async def _events(
    rid: str,
    body: ResponsesBody,
    reply: SpokenReply,
    first: Transcript | Audio | None,
    events: AsyncIterator[Transcript | Audio],
) -> AsyncIterator[bytes]:
    """The Responses SSE sequence: created, deltas as they come (audio and transcript, or text), done."""
    seq = _Sequence()
    ids = {"item_id": f"msg_{rid[5:]}", "output_index": 0, "content_index": 0}
    if reply.spoken:
        ids = {"response_id": rid, **ids}
    yield seq.frame({"type": "response.created", "response": _response(rid, body, "in_progress", [])})
    item = first
    try:
        while item is not None:
            if isinstance(item, Audio):
                yield seq.frame({"type": "response.audio.delta", **ids, "delta": base64.b64encode(item.data).decode()})
            elif reply.spoken:
                yield seq.frame({"type": "response.audio.transcript.delta", **ids, "delta": item.text})
            else:
                yield seq.frame({"type": "response.output_text.delta", **ids, "delta": item.text, "logprobs": []})
            item = await anext(events, None)
    except StudioError as exc:
        yield seq.frame({"type": "error", "code": exc.code, "message": exc.message, "param": exc.param})
        return
    text = reply.spoken_text
    if reply.spoken:
        yield seq.frame({"type": "response.audio.done", **ids})
        yield seq.frame({"type": "response.audio.transcript.done", **ids, "transcript": text})
    else:
        yield seq.frame({"type": "response.output_text.done", **ids, "text": text, "logprobs": []})
    done = _response(rid, body, "completed", _content(text, None))
    yield seq.frame({"type": "response.completed", "response": done})
