"""`/v1/realtime` with the official SDK's Realtime client (and raw WebSocket frames for malformed input):
text turns (LLM reply from a real upstream server, or the given text without one), audio in through
Whisper, cancel mid-reply, errors as `error` events, the key at the handshake."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import jiwer
import numpy as np
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from tests.conftest import LiveServer, hear, wait_until_idle, words
from tests.llm_upstream import Upstream

SESSION = {
    "type": "realtime", "output_modalities": ["audio"], "instructions": "Answer briefly.",
    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None,
                        "transcription": {"model": "whisper-1", "language": "en"}},
              "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"}},
}  # fmt: skip
SENTENCE = "The river runs past the old mill."


def _user_text(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def _until(events: Iterator[Any], kind: str) -> list[Any]:
    """Events up to and including the first of type `kind`."""
    seen = []
    for event in events:
        seen.append(event)
        if event.type == kind:
            return seen
    raise AssertionError(f"the socket closed before {kind}")


def _pcm(events: list[Any]) -> bytes:
    return b"".join(base64.b64decode(e.delta) for e in events if e.type == "response.output_audio.delta")


def test_text_turn_without_upstream_speaks_the_text(server: LiveServer, whisper: Any) -> None:
    client = server.client(max_retries=0)
    with client.realtime.connect(model="gpt-realtime") as conn:
        first = conn.recv()
        assert first.type == "session.created" and first.event_id
        conn.session.update(session=SESSION)  # type: ignore[arg-type]
        updated = conn.recv()
        assert updated.type == "session.updated"
        assert updated.session.audio.output.voice == "alloy"  # type: ignore[union-attr]
        conn.conversation.item.create(item=_user_text(SENTENCE))  # type: ignore[arg-type]
        conn.response.create()
        events = _until(iter(conn), "response.done")
    types = [e.type for e in events]
    assert "response.created" in types and types[-1] == "response.done"
    assert events[-1].response.status == "completed"
    deltas = [e for e in events if e.type == "response.output_audio.delta"]
    assert deltas and all(len(base64.b64decode(e.delta)) % 2 == 0 for e in deltas)
    assert {e.response_id for e in deltas} == {events[-1].response.id}
    samples = np.frombuffer(_pcm(events), "<i2").astype(np.float32) / 32768
    assert jiwer.wer(words(SENTENCE), hear(whisper, samples, 24000)) <= 0.25
    transcript = "".join(e.delta for e in events if e.type == "response.output_audio_transcript.delta")
    assert words(transcript) == words(SENTENCE)


@pytest.mark.slow
def test_text_turn_with_upstream_speaks_the_llm_reply(chat_server: LiveServer, llm: Upstream) -> None:
    client = chat_server.client(max_retries=0)
    with client.realtime.connect(model="gpt-realtime") as conn:
        conn.session.update(session={**SESSION, "max_output_tokens": 12})  # type: ignore[arg-type]
        conn.conversation.item.create(item=_user_text("Hello there."))  # type: ignore[arg-type]
        conn.response.create()
        events = _until(iter(conn), "response.done")
    assert events[-1].response.status == "completed"
    transcript = "".join(e.delta for e in events if e.type == "response.output_audio_transcript.delta")
    done = next(e for e in events if e.type == "response.output_audio_transcript.done")
    assert transcript == done.transcript
    assert words(transcript) and words(transcript) != words("Hello there.")  # the LLM's answer, not an echo
    assert len(_pcm(events)) > 24000 * 2 * 0.5


def test_audio_in_is_transcribed(server: LiveServer, whisper: Any) -> None:
    client = server.client(max_retries=0)
    pcm = client.audio.speech.create(model="tts-1", voice="alloy", input=SENTENCE, response_format="pcm").content
    with client.realtime.connect(model="gpt-realtime") as conn:
        conn.session.update(session=SESSION)  # type: ignore[arg-type]
        step = 24000  # half a second of pcm16 per append
        for start in range(0, len(pcm), step):
            conn.input_audio_buffer.append(audio=base64.b64encode(pcm[start : start + step]).decode())
        conn.input_audio_buffer.commit()
        events = _until(iter(conn), "conversation.item.input_audio_transcription.completed")
    committed = next(e for e in events if e.type == "input_audio_buffer.committed")
    done = events[-1]
    assert done.item_id == committed.item_id and done.content_index == 0
    assert jiwer.wer(words(SENTENCE), words(done.transcript)) <= 0.25
    assert not any(e.type == "response.created" for e in events)  # turn_detection null: no reply by itself


@pytest.mark.slow
def test_cancel_mid_reply_stops_the_audio(chat_server: LiveServer) -> None:
    client = chat_server.client(max_retries=0)
    with client.realtime.connect(model="gpt-realtime") as conn:
        conn.session.update(session={**SESSION, "max_output_tokens": 300})  # type: ignore[arg-type]
        conn.conversation.item.create(item=_user_text("Tell me a long story."))  # type: ignore[arg-type]
        conn.response.create()  # 300 tokens: minutes of speech, so the cancel lands mid-reply
        before = _until(iter(conn), "response.output_audio.delta")
        conn.response.cancel()
        after = _until(iter(conn), "response.done")
        assert after[-1].response.status == "cancelled"
        conn.conversation.item.create(item=_user_text("Next."))  # type: ignore[arg-type]
        tail = _until(iter(conn), "conversation.item.added")
    assert before[-1].type == "response.output_audio.delta"
    seconds_after_cancel = len(_pcm(after)) / 2 / 24000
    assert seconds_after_cancel <= 5.0
    assert not any(e.type == "response.output_audio.delta" for e in tail)  # nothing after response.done
    assert wait_until_idle(chat_server)["active_requests"] == 0


def test_bad_events_are_error_events_and_the_session_goes_on(server: LiveServer) -> None:
    url = server.url.replace("http", "ws") + "/v1/realtime?model=gpt-realtime"
    with ws_connect(url) as ws:
        assert json.loads(ws.recv())["type"] == "session.created"
        cases: list[tuple[str, str]] = [
            ("not json", "invalid_json"),
            (json.dumps({"type": "no.such.event", "event_id": "evt_1"}), "invalid_event"),
            (json.dumps({"type": "input_audio_buffer.append", "audio": "***", "event_id": "evt_2"}), "invalid_value"),
            (json.dumps({"type": "input_audio_buffer.commit", "event_id": "evt_3"}), "input_audio_buffer_commit_empty"),
            (json.dumps({"type": "response.cancel", "event_id": "evt_4"}), "response_cancel_not_active"),
            (json.dumps({"type": "conversation.item.create", "item": {"type": "function_call"}}), "invalid_value"),
            (json.dumps({"type": "session.update", "session": {"audio": {"output": {"voice": "nobody"}}}}), None),
            (json.dumps({"type": "session.update",
                         "session": {"audio": {"output": {"format": {"type": "audio/pcmu"}}}}}),
             "unsupported_format"),
            (json.dumps(["a list"]), "invalid_event"),
        ]  # fmt: skip
        for frame, code in cases:
            ws.send(frame)
            event = json.loads(ws.recv())
            assert event["type"] == "error", frame
            assert set(event["error"]) >= {"type", "code", "message", "param", "event_id"}
            if code is not None:
                assert event["error"]["code"] == code, frame
            sent = json.loads(frame) if frame.startswith("{") else {}
            assert event["error"]["event_id"] == sent.get("event_id")
        ws.send(json.dumps({"type": "session.update", "session": {"instructions": "still here"}}))
        assert json.loads(ws.recv())["type"] == "session.updated"


def test_hostile_frames_are_error_events_and_the_session_goes_on(server: LiveServer) -> None:
    url = server.url.replace("http", "ws") + "/v1/realtime?model=gpt-realtime"
    deep = "[" * 60_000 + "]" * 60_000
    speeds = [-5, 0, "NaN", "Infinity", 1e308, "fast", True]
    with ws_connect(url, max_size=None) as ws:
        assert json.loads(ws.recv())["type"] == "session.created"
        ws.send(deep)
        assert json.loads(ws.recv())["error"]["code"] == "invalid_json"
        for speed in speeds:
            value = speed if not isinstance(speed, str) or speed == "fast" else f"__{speed}__"
            frame = json.dumps({"type": "session.update", "event_id": "evt_s",
                                "session": {"audio": {"output": {"speed": value}}}})  # fmt: skip
            frame = frame.replace('"__NaN__"', "NaN").replace('"__Infinity__"', "Infinity")
            ws.send(frame)
            event = json.loads(ws.recv())
            assert event["type"] == "error" and event["error"]["param"] == "session.audio.output.speed", speed
            assert event["error"]["event_id"] == "evt_s"
        huge = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "word " * 2_000_000}]}
        ws.send(json.dumps({"type": "conversation.item.create", "item": huge, "event_id": "evt_big"}))
        event = json.loads(ws.recv())
        assert event["type"] == "error" and event["error"]["code"] == "string_above_max_length"
        ws.send(json.dumps({"type": "session.update", "session": {"audio": {"output": {"speed": 1.5}}}}))
        updated = json.loads(ws.recv())
        assert updated["type"] == "session.updated" and updated["session"]["audio"]["output"]["speed"] == 1.5


def test_conversation_items_are_bounded(server: LiveServer) -> None:
    from tts_studio.realtime import MAX_ITEMS, RealtimeSession

    sent: list[dict[str, Any]] = []

    async def send(event: dict[str, Any]) -> None:
        sent.append(event)

    async def go() -> RealtimeSession:
        session = RealtimeSession(server.app.state.services, "gpt-realtime", send)
        for i in range(MAX_ITEMS + 50):
            item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": f"line {i}"}]}
            await session.handle({"type": "conversation.item.create", "item": item})
        return session

    import anyio

    session = anyio.run(go)
    assert len(session.items) == MAX_ITEMS and session.items[-1].text == f"line {MAX_ITEMS + 49}"


def test_key_is_checked_at_the_handshake(live_server: Callable[..., LiveServer]) -> None:
    live = live_server(api_key="sk-test")
    url = live.url.replace("http", "ws") + "/v1/realtime?model=gpt-realtime"
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        with pytest.raises(InvalidStatus) as info:
            ws_connect(url, additional_headers=headers).close()
        assert info.value.response.status_code == 403
    with live.client(api_key="sk-test").realtime.connect(model="gpt-realtime") as conn:
        assert conn.recv().type == "session.created"
    with ws_connect(url, subprotocols=["realtime", "openai-insecure-api-key.sk-test"]) as ws:  # type: ignore[list-item]
        assert json.loads(ws.recv())["type"] == "session.created"
    wrong = live.client(api_key="wrong")
    with pytest.raises(InvalidStatus) as refused, wrong.realtime.connect(model="gpt-realtime") as conn:
        conn.recv()  # the SDK surfaces the refused handshake as is
    assert refused.value.response.status_code == 403


def test_foreign_origin_is_refused(server: LiveServer) -> None:
    url = server.url.replace("http", "ws") + "/v1/realtime"
    with pytest.raises(InvalidStatus) as info:
        ws_connect(url, origin="http://evil.example").close()  # type: ignore[arg-type]
    assert info.value.response.status_code == 403


def test_beta_protocol_clients_get_beta_event_names(server: LiveServer) -> None:
    url = server.url.replace("http", "ws") + "/v1/realtime?model=gpt-4o-realtime-preview"
    with ws_connect(url, additional_headers={"OpenAI-Beta": "realtime=v1"}) as ws:
        created = json.loads(ws.recv())
        assert created["type"] == "session.created" and created["session"]["output_audio_format"] == "pcm16"
        session = {"modalities": ["text", "audio"], "voice": "echo", "input_audio_format": "pcm16",
                   "output_audio_format": "pcm16", "turn_detection": None}  # fmt: skip
        ws.send(json.dumps({"type": "session.update", "session": session}))
        assert json.loads(ws.recv())["session"]["voice"] == "echo"
        ws.send(json.dumps({"type": "conversation.item.create", "item": _user_text("Hello from an older client.")}))
        assert json.loads(ws.recv())["type"] == "conversation.item.created"
        ws.send(json.dumps({"type": "response.create"}))
        types = []
        while not types or types[-1] != "response.done":
            types.append(json.loads(ws.recv())["type"])
    assert {"response.audio.delta", "response.audio_transcript.delta", "response.audio.done"} <= set(types)
    assert not any(t.startswith("response.output_audio") for t in types)


@pytest.mark.slow
def test_text_only_session_streams_the_llm_text(chat_server: LiveServer, llm: Upstream) -> None:
    import httpx

    client = chat_server.client(max_retries=0)
    with client.realtime.connect(model="gpt-realtime") as conn:
        conn.session.update(session={"type": "realtime", "output_modalities": ["text"], "max_output_tokens": 8})  # type: ignore[arg-type]
        conn.conversation.item.create(item=_user_text("Hello there."))  # type: ignore[arg-type]
        conn.response.create()
        events = _until(iter(conn), "response.done")
    assert not any(e.type.startswith("response.output_audio") for e in events)
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    body = {"model": "tiny-llm/chat", "messages": [{"role": "user", "content": "Hello there."}], "max_tokens": 8}
    expected = httpx.post(f"{llm.url}/chat/completions", json=body, timeout=60).json()["choices"][0]["message"]
    assert text == expected["content"] and events[-1].response.status == "completed"
    assert next(e for e in events if e.type == "response.output_text.done").text == text
