"""One `/v1/realtime` session (a subset of OpenAI's Realtime protocol): session.update, text and audio input,
response.create spoken as the LLM writes, response.cancel, errors as `error` events. Transport-free: the
WebSocket route feeds it client events and gives it a `send` coroutine."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import anyio

from tts_studio.audio.decode import DecodedAudio, pcm16_to_float
from tts_studio.errors import StudioError
from tts_studio.realtime_beta import beta_event
from tts_studio.realtime_config import (
    RATE,
    EventError,
    apply_update,
    max_tokens,
    new_session,
    object_of,
    read_update,
    transcription_failure,
)
from tts_studio.services.conversation import Audio, SpokenReply, fixed_text, llm_messages
from tts_studio.services.speech import SpeechOrder
from tts_studio.studio import Services

log = logging.getLogger(__name__)
Send = Callable[[dict[str, Any]], Awaitable[None]]
MAX_BUFFER_BYTES = RATE * 2 * 60 * 10  # ten minutes of pcm16 waiting for a commit
MAX_ITEMS = 200  # conversation items kept (the oldest go first, as OpenAI truncates a long conversation)
MAX_CONVERSATION_CHARS = 200_000  # text kept across all items
CLOSE_WAIT_SECONDS = 10.0  # a response asked to stop ends within one engine piece; this is the backstop


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


@dataclass
class Item:
    id: str
    role: str
    text: str
    kind: str = "input_text"  # the content part type


class _Reply:
    """The response in progress: its task, its spoken reply, and whether it was cancelled."""

    def __init__(self, rid: str, reply: SpokenReply) -> None:
        self.id, self.reply = rid, reply
        self.cancelled = False
        self.task: asyncio.Task[None] | None = None


class RealtimeSession:
    def __init__(self, services: Services, model: str, send: Send, beta: bool = False) -> None:
        self.services = services
        self.beta = beta  # `OpenAI-Beta: realtime=v1` clients (older pipecat, livekit) get the beta event names
        self.model = model
        self._send_raw = send
        self._send_lock = asyncio.Lock()
        self.items: list[Item] = []
        self.audio_buffer = bytearray()
        self.active: _Reply | None = None
        self.closed = False  # the socket is gone: nothing more is sent
        self.session: dict[str, Any] = new_session(new_id("sess"), model)

    async def send(self, event: dict[str, Any]) -> None:
        """Send one event; a client that takes nothing for `client_stall_seconds` is treated as gone."""
        event.setdefault("event_id", new_id("event"))
        if self.beta:
            event = beta_event(event)
        async with self._send_lock:
            if not self.closed and event:
                try:
                    with anyio.fail_after(self.services.settings.client_stall_seconds):
                        await self._send_raw(event)
                except Exception:  # gone mid-send, or not reading: stop the response, free its job
                    self.closed = True
                    if self.active is not None:
                        self._stop(self.active)

    async def error(self, message: str, code: str, param: str | None = None, event_id: str | None = None) -> None:
        error = {
            "type": "invalid_request_error",
            "code": code,
            "message": message,
            "param": param,
            "event_id": event_id,
        }
        await self.send({"type": "error", "error": error})

    async def start(self) -> None:
        await self.send({"type": "session.created", "session": self.session})

    async def handle(self, event: Any) -> None:
        """Serve one client event; every failure becomes an `error` event."""
        event_id = event.get("event_id") if isinstance(event, dict) else None
        event_id = event_id if isinstance(event_id, str) else None
        try:
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                raise EventError("A client event is a JSON object with a 'type'.", "invalid_event", "type")
            handler = self._handlers.get(event["type"])
            if handler is None:
                raise EventError(f"Unknown or unsupported event type '{event['type']}'.", "invalid_event", "type")
            await handler(self, event)
        except EventError as exc:
            await self.error(exc.message, exc.code, exc.param, event_id)
        except StudioError as exc:
            await self.error(exc.message, exc.code or "server_error", exc.param, event_id)
        except Exception:  # a bug must cost one event, never the session
            log.exception("realtime event %s failed", event.get("type") if isinstance(event, dict) else None)
            await self.error("The event failed; see the server log.", "server_error", None, event_id)

    # -- session ---------------------------------------------------------------------------------
    async def _session_update(self, event: dict[str, Any]) -> None:
        change = read_update(event.get("session"))  # every field checked before any is applied
        if change.voice is not None:
            await anyio.to_thread.run_sync(self._check_voice, change.voice)  # an unknown voice fails now
        apply_update(self.session, change)
        await self.send({"type": "session.updated", "session": self.session})

    def _speech_model(self) -> str:
        settings = self.services.settings
        return self.model if settings.alias_for(self.model) is not None else settings.talk_model

    def _check_voice(self, voice: str) -> None:
        """(blocking: it resolves the model) an unknown voice is an error."""
        engine_id, _ = self.services.speech.resolve_model(self._speech_model())
        self.services.speech.voices.resolve(voice, self.services.manager.info(engine_id))

    # -- conversation ------------------------------------------------------------------------------
    def _keep(self, item: Item) -> None:
        """Add `item`, dropping the oldest items beyond MAX_ITEMS or MAX_CONVERSATION_CHARS."""
        self.items.append(item)
        total = sum(len(kept.text) for kept in self.items)
        while len(self.items) > MAX_ITEMS or (total > MAX_CONVERSATION_CHARS and len(self.items) > 1):
            total -= len(self.items.pop(0).text)

    async def _add_item(self, item: Item) -> None:
        previous = self.items[-1].id if self.items else None
        self._keep(item)
        content = [{"type": item.kind, "transcript" if item.kind == "input_audio" else "text": item.text}]
        shape = {
            "id": item.id,
            "type": "message",
            "object": "realtime.item",
            "role": item.role,
            "status": "completed",
            "content": content,
        }
        await self.send({"type": "conversation.item.added", "previous_item_id": previous, "item": shape})
        await self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": shape})

    async def _item_create(self, event: dict[str, Any]) -> None:
        item = event.get("item")
        if not isinstance(item, dict) or item.get("type", "message") != "message":
            raise EventError("Only message items are supported.", param="item.type")
        role = item.get("role")
        if role not in ("user", "assistant", "system"):
            raise EventError("'role' must be user, assistant or system.", param="item.role")
        texts = []
        for part in item.get("content") or []:
            if not isinstance(part, dict) or part.get("type") not in ("input_text", "text", "output_text"):
                kind = part.get("type") if isinstance(part, dict) else None
                raise EventError(f"Content of type '{kind}' is not supported; send text.", param="item.content")
            if not isinstance(part.get("text"), str):
                raise EventError("A text part needs 'text'.", param="item.content")
            texts.append(part["text"])
        if not texts:
            raise EventError("The item has no text.", param="item.content")
        limit = self.services.settings.max_input_chars
        if sum(len(text) for text in texts) > limit:
            raise EventError(
                f"An item holds at most {limit} characters of text.", "string_above_max_length", "item.content"
            )
        given = item.get("id")
        item_id = given if isinstance(given, str) and given else new_id("item")
        kind = "output_text" if role == "assistant" else "input_text"
        await self._add_item(Item(item_id, role, "\n".join(texts), kind))

    async def _append(self, event: dict[str, Any]) -> None:
        try:
            data = base64.b64decode(event.get("audio") or "", validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise EventError("'audio' must be base64 pcm16.", param="audio") from None
        if len(self.audio_buffer) + len(data) > MAX_BUFFER_BYTES:
            raise EventError("The input audio buffer is full (10 minutes); commit or clear it.", "buffer_full")
        self.audio_buffer += data

    async def _clear(self, event: dict[str, Any]) -> None:
        self.audio_buffer.clear()
        await self.send({"type": "input_audio_buffer.cleared"})

    async def _commit(self, event: dict[str, Any]) -> None:
        if len(self.audio_buffer) < 2:
            raise EventError("The input audio buffer is empty.", "input_audio_buffer_commit_empty")
        data = bytes(self.audio_buffer[: len(self.audio_buffer) // 2 * 2])
        self.audio_buffer.clear()
        item_id = new_id("item")
        previous = self.items[-1].id if self.items else None
        await self.send({"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": previous})
        samples = pcm16_to_float(data)
        audio = DecodedAudio(samples, RATE, "pcm")
        services, wanted = self.services, self.session["audio"]["input"]["transcription"]
        hear = functools.partial(
            services.transcriber.transcribe,
            audio,
            language=wanted.get("language"),
            prompt=wanted.get("prompt"),
            hotwords=", ".join(wanted.get("keywords") or ()) or None,
            languages=wanted.get("languages") or (),
        )
        try:
            with services.transcription_slots.held():
                transcript = await anyio.to_thread.run_sync(hear)
        except StudioError as exc:  # e.g. a language no installed Whisper hears: this turn fails, not the session
            failure = transcription_failure(exc)
            error = {"type": "invalid_request_error", "code": failure.code, "message": failure.message}
            failed = {"item_id": item_id, "content_index": 0, "error": {**error, "param": failure.param}}
            await self.send({"type": "conversation.item.input_audio_transcription.failed", **failed})
            raise failure from exc
        await self._add_item(Item(item_id, "user", transcript.text, "input_audio"))
        await self.send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": transcript.text,
                "usage": {"type": "duration", "seconds": round(audio.duration, 3)},
            }
        )

    # -- responses ---------------------------------------------------------------------------------
    def _source(self, instructions: str, token_limit: int | str) -> AsyncIterator[str]:
        chat = self.services.chat
        turns = [(item.role, item.text) for item in self.items if item.text.strip()]
        if chat.configured:
            limit = token_limit if isinstance(token_limit, int) else None
            return chat.reply(llm_messages(instructions or None, turns), None, limit)
        if not turns:
            raise EventError(
                "Nothing to say: add a text item first (no chat upstream is configured).", "no_input", "item"
            )
        return fixed_text(turns[-1][1])  # without an LLM, the latest text is spoken

    async def _response_create(self, event: dict[str, Any]) -> None:
        if self.active is not None:
            raise EventError("A response is already in progress.", "conversation_already_has_active_response")
        options = object_of(event.get("response"))
        instructions = options.get("instructions", self.session["instructions"])
        limit = max_tokens(
            options.get("max_output_tokens", self.session["max_output_tokens"]), "response.max_output_tokens"
        )
        voice = object_of(object_of(options.get("audio")).get("output")).get("voice", options.get("voice"))
        voice = voice if isinstance(voice, str) and voice else self.session["audio"]["output"]["voice"]
        order = SpeechOrder(
            model=self._speech_model(), input="", voice=voice, speed=self.session["audio"]["output"]["speed"]
        )
        modalities = options.get("output_modalities", options.get("modalities", self.session["output_modalities"]))
        spoken = not isinstance(modalities, list) or "audio" in modalities
        source = self._source(str(instructions or ""), limit)
        reply = SpokenReply(self.services.jobs, order, source, "pcm", spoken=spoken)
        active = _Reply(new_id("resp"), reply)
        self.active = active
        active.task = asyncio.create_task(self._run(active))

    def _response(self, active: _Reply, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": active.id,
            "object": "realtime.response",
            "status": status,
            "output": output,
            "output_modalities": ["audio" if active.reply.spoken else "text"],
            "conversation_id": None,
            "metadata": None,
            "audio": {
                "output": {
                    "format": {"type": "audio/pcm", "rate": RATE},
                    "voice": self.session["audio"]["output"]["voice"],
                }
            },
        }

    async def _run(self, active: _Reply) -> None:
        item_id = new_id("item")
        ids = {"response_id": active.id, "item_id": item_id, "output_index": 0, "content_index": 0}
        item = {
            "id": item_id,
            "type": "message",
            "object": "realtime.item",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        status, failure = "completed", None
        await self.send({"type": "response.created", "response": self._response(active, "in_progress", [])})
        await self.send(
            {"type": "response.output_item.added", "response_id": active.id, "output_index": 0, "item": item}
        )
        events = active.reply.events()
        try:
            async for piece in events:
                if active.cancelled:
                    break
                if isinstance(piece, Audio):
                    await self.send(
                        {
                            "type": "response.output_audio.delta",
                            **ids,
                            "delta": base64.b64encode(piece.data).decode("ascii"),
                        }
                    )
                else:
                    kind = (
                        "response.output_audio_transcript.delta"
                        if active.reply.spoken
                        else "response.output_text.delta"
                    )
                    await self.send({"type": kind, **ids, "delta": piece.text})
        except asyncio.CancelledError:
            status = "cancelled"
        except StudioError as exc:
            status, failure = ("cancelled", None) if active.cancelled else ("failed", exc)
        except Exception:  # a feed cancelled mid-wait, or a bug: never a dropped socket
            status = "cancelled" if active.cancelled else "failed"
            if not active.cancelled:
                log.exception("realtime response failed")
                failure = StudioError("The response failed; see the server log.", code="server_error")
        finally:
            with anyio.CancelScope(shield=True):
                await active.reply.aclose()
                with contextlib.suppress(Exception):
                    await events.aclose()
                await self._finish(active, item, ids, "cancelled" if active.cancelled else status, failure)

    async def _finish(
        self, active: _Reply, item: dict[str, Any], ids: dict[str, Any], status: str, failure: StudioError | None
    ) -> None:
        text = active.reply.spoken_text
        if failure is not None:
            await self.error(failure.message, failure.code or "server_error", failure.param)
        spoken = active.reply.spoken
        if status == "completed" and spoken:
            await self.send({"type": "response.output_audio.done", **ids})
            await self.send({"type": "response.output_audio_transcript.done", **ids, "transcript": text})
        elif status == "completed":
            await self.send({"type": "response.output_text.done", **ids, "text": text})
        part = {"type": "output_audio", "transcript": text} if spoken else {"type": "output_text", "text": text}
        item = {**item, "status": "completed" if status == "completed" else "incomplete", "content": [part]}
        await self.send(
            {"type": "response.output_item.done", "response_id": active.id, "output_index": 0, "item": item}
        )
        if text:
            self._keep(Item(item["id"], "assistant", text, part["type"]))
        self.active = None
        await self.send({"type": "response.done", "response": self._response(active, status, [item])})

    def _stop(self, active: _Reply) -> None:
        """Ask the response to stop (never blocks): its task ends within one engine piece and sends
        `response.done` (status cancelled); its job's slot and lease are freed by then."""
        active.cancelled = True
        active.reply.cancel()

    async def _response_cancel(self, event: dict[str, Any]) -> None:
        active = self.active
        if active is None:
            raise EventError("There is no response in progress to cancel.", "response_cancel_not_active")
        self._stop(active)  # a second cancel while it stops is a no-op

    async def close(self) -> None:
        """The socket is gone: stop any response and wait until its job is freed."""
        self.closed = True
        active = self.active
        if active is None or active.task is None:
            return
        self._stop(active)
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_WAIT_SECONDS):
            await asyncio.wait({active.task})
        if not active.task.done():  # backstop: the task's own finally frees the job
            active.task.cancel()

    _handlers: ClassVar[dict[str, Callable[[RealtimeSession, dict[str, Any]], Awaitable[None]]]] = {
        "session.update": _session_update,
        "conversation.item.create": _item_create,
        "input_audio_buffer.append": _append,
        "input_audio_buffer.clear": _clear,
        "input_audio_buffer.commit": _commit,
        "response.create": _response_create,
        "response.cancel": _response_cancel,
    }
