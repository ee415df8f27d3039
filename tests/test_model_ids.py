"""OpenAI's model ids as of the 2026 SDK, through `model_map` (an id extending a key with `-…` follows the longest
key): speech with the dated ids, `/v1/models` with `shutdown_date`, a Realtime session on `gpt-realtime-2.1-mini`,
the fields the 2026 Realtime SDK sends that the studio ignores, and the session's transcription language."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import anyio
import jiwer
import numpy as np
import openai
import pytest
from openai import OpenAI
from websockets.sync.client import connect as ws_connect

from tests.conftest import InProcess, LiveServer, hear, make_settings, words
from tts_studio.audio.decode import DecodedAudio
from tts_studio.errors import InvalidRequest
from tts_studio.realtime import RealtimeSession
from tts_studio.services.transcription import Transcriber, Transcript

# id -> the model_map key it resolves to (mini ids: the fast CPU engine; the others: the best installed engine)
ID_TABLE = {
    "gpt-realtime-2.1": "gpt-realtime",
    "gpt-realtime-2.1-2026-07-15": "gpt-realtime",
    "gpt-realtime-2.1-mini": "gpt-realtime-2.1-mini",
    "gpt-realtime-2.1-mini-2026-07-15": "gpt-realtime-2.1-mini",
    "gpt-realtime-2": "gpt-realtime",
    "gpt-realtime-2-2026-03-01": "gpt-realtime",
    "gpt-realtime-1.5": "gpt-realtime",
    "gpt-realtime-2025-08-28": "gpt-realtime",
    "gpt-realtime-mini": "gpt-realtime-mini",
    "gpt-realtime-mini-2025-12-15": "gpt-realtime-mini",
    "gpt-audio-1.5": "gpt-audio",
    "gpt-audio-1.5-2026-02-01": "gpt-audio",
    "gpt-audio-mini": "gpt-audio-mini",
    "gpt-audio-mini-2025-12-15": "gpt-audio-mini",
    "gpt-4o-mini-tts-2025-12-15": "gpt-4o-mini-tts",
    "gpt-4o-mini-tts-2025-03-20": "gpt-4o-mini-tts",
}
FAST = ["hibari"]
MINI_KEYS = ("gpt-realtime-mini", "gpt-realtime-2.1-mini", "gpt-audio-mini", "gpt-4o-mini-realtime-preview")
BEST = ["voxcpm2", "chatterbox-multilingual", "chatterbox", "hibari"]
SESSION_2026 = {
    "type": "realtime", "output_modalities": ["audio"], "instructions": "Answer briefly.",
    "reasoning": {"effort": "low"}, "parallel_tool_calls": True,
    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None,
                        "transcription": {"model": "gpt-realtime-whisper", "language": "en", "delay": "low"}},
              "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}},
}  # fmt: skip
SENTENCE = "The river runs past the old mill."


def test_the_id_table(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    for model, key in ID_TABLE.items():
        assert settings.alias_for(model) == key, model
    for key in MINI_KEYS:
        assert settings.model_map[key] == FAST, key
    for key in ("gpt-realtime", "gpt-audio", "gpt-4o-mini-tts", "gpt-4o-realtime-preview"):
        assert settings.model_map[key] == BEST, key
    for unknown in ("gpt-5-tts", "gpt-audiophile", "gpt-realtimes", "whisper-9"):
        assert settings.alias_for(unknown) is None, unknown


@pytest.mark.parametrize("model", list(ID_TABLE))
def test_each_id_speaks(sdk: OpenAI, model: str) -> None:
    audio = sdk.audio.speech.create(model=model, voice="alloy", input="Hello.", response_format="wav")
    assert audio.content[:4] == b"RIFF" and len(audio.content) > 1000
    retrieved = sdk.models.retrieve(model)
    assert retrieved.id == model and retrieved.shutdown_date is None
    assert retrieved.model_extra is not None
    engines = FAST if ID_TABLE[model] in MINI_KEYS else BEST  # the first of them installed speaks
    assert retrieved.model_extra["engine"] in engines


def test_every_model_object_has_shutdown_date(sdk: OpenAI, app_client: InProcess) -> None:
    listed = sdk.models.list().data
    ids = {m.id for m in listed}
    assert {"gpt-realtime", "gpt-realtime-2.1-mini", "gpt-audio", "gpt-audio-mini", "hibari"} <= ids
    for model in app_client.get("/v1/models").json()["data"]:
        assert "shutdown_date" in model and model["shutdown_date"] is None, model["id"]
    mini = sdk.models.retrieve("gpt-realtime-2.1-mini")
    assert mini.id == "gpt-realtime-2.1-mini" and mini.object == "model" and mini.shutdown_date is None
    assert "shutdown_date" in app_client.get("/v1/models/hibari").json()


@pytest.mark.parametrize("model", ["gpt-5-tts", "gpt-audiophile", "whisper-9"])
def test_unknown_ids_are_still_not_found(sdk: OpenAI, model: str) -> None:
    with pytest.raises(openai.NotFoundError) as retrieve:
        sdk.models.retrieve(model)
    assert retrieve.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError) as speech:
        sdk.audio.speech.create(model=model, voice="alloy", input="Hello.")
    assert speech.value.code == "model_not_found" and speech.value.param == "model"


def test_realtime_2_1_mini_session_speaks(server: LiveServer, whisper: Any) -> None:
    client = server.client(max_retries=0)
    with client.realtime.connect(model="gpt-realtime-2.1-mini") as conn:
        created = conn.recv()
        assert created.type == "session.created" and created.session.model == "gpt-realtime-2.1-mini"  # type: ignore[union-attr]
        conn.session.update(session=SESSION_2026)  # type: ignore[arg-type]
        updated = conn.recv()
        assert updated.type == "session.updated", updated
        assert updated.session.audio.output.voice == "marin"  # type: ignore[union-attr]
        conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": SENTENCE}]}
        )
        conn.response.create()
        events = []
        for event in conn:
            events.append(event)
            if event.type == "response.done":
                break
    assert not any(e.type == "error" for e in events)
    assert events[-1].response.status == "completed"  # type: ignore[union-attr]
    pcm = b"".join(base64.b64decode(e.delta) for e in events if e.type == "response.output_audio.delta")
    samples = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
    assert jiwer.wer(words(SENTENCE), hear(whisper, samples, 24000)) <= 0.25


def test_ignored_2026_fields_are_accepted(server: LiveServer) -> None:
    url = server.url.replace("http", "ws") + "/v1/realtime?model=gpt-realtime-2.1"
    with ws_connect(url) as ws:
        assert json.loads(ws.recv())["type"] == "session.created"
        transcription = {"model": "gpt-realtime-whisper", "language": "FR", "delay": "xhigh",
                         "keywords": ["Studio"], "languages": ["fr", "en"], "prompt": "Un studio."}  # fmt: skip
        update = {"type": "realtime", "reasoning": {"effort": "high"}, "parallel_tool_calls": False,
                  "audio": {"input": {"transcription": transcription}}}  # fmt: skip
        ws.send(json.dumps({"type": "session.update", "event_id": "evt_1", "session": update}))
        updated = json.loads(ws.recv())
        assert updated["type"] == "session.updated", updated
        assert updated["session"]["audio"]["input"]["transcription"] == {
            "model": "gpt-realtime-whisper",
            "language": "fr",
            "prompt": "Un studio.",
            "keywords": ["Studio"],
            "languages": ["fr", "en"],
        }
        assert "reasoning" not in updated["session"] and "parallel_tool_calls" not in updated["session"]
        bad = {"audio": {"input": {"transcription": {"language": 42}}}}
        ws.send(json.dumps({"type": "session.update", "event_id": "evt_2", "session": bad}))
        error = json.loads(ws.recv())
        assert error["type"] == "error" and error["error"]["event_id"] == "evt_2"
        assert error["error"]["param"] == "session.audio.input.transcription.language"
    beta = {"OpenAI-Beta": "realtime=v1"}
    with ws_connect(url.replace("gpt-realtime-2.1", "gpt-realtime-mini"), additional_headers=beta) as ws:
        assert json.loads(ws.recv())["type"] == "session.created"
        session = {"input_audio_transcription": {"model": "whisper-1", "language": "de"}, "parallel_tool_calls": True}
        ws.send(json.dumps({"type": "session.update", "session": session}))
        updated = json.loads(ws.recv())
        assert updated["session"]["input_audio_transcription"]["language"] == "de"


class _Refusing(Transcriber):
    """Hears English only, as the bundled tiny.en does; records the language each call asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[str | None, str | None]] = []

    def transcribe(self, *args: Any, **kwargs: Any) -> Transcript:
        audio: DecodedAudio = args[0]
        language, prompt = kwargs.get("language"), kwargs.get("prompt")
        self.asked.append((language, prompt))
        if language not in (None, "en"):
            raise InvalidRequest(f"No installed Whisper hears '{language}'.", param="language", code="unsupported")
        return Transcript("hello there", "en", audio.duration, ())


def test_input_audio_is_transcribed_in_the_session_language(app_client: InProcess) -> None:
    transcriber = _Refusing()
    app: Any = app_client.app  # the FastAPI app (TestClient types it as a bare ASGI callable)
    services = dataclasses.replace(app.state.services, transcriber=transcriber)
    sent: list[dict[str, Any]] = []

    async def send(event: dict[str, Any]) -> None:
        sent.append(event)

    silence = base64.b64encode(bytes(24000)).decode()  # half a second of pcm16

    def transcription(language: str) -> dict[str, Any]:
        return {"audio": {"input": {"transcription": {"language": language, "prompt": "Greetings."}}}}

    async def go() -> None:
        session = RealtimeSession(services, "gpt-realtime-2.1-mini", send)
        for language in ("fr", "en"):
            await session.handle({"type": "session.update", "session": transcription(language)})
            await session.handle({"type": "input_audio_buffer.append", "audio": silence})
            await session.handle({"type": "input_audio_buffer.commit", "event_id": f"evt_{language}"})

    anyio.run(go)
    assert transcriber.asked == [("fr", "Greetings."), ("en", "Greetings.")]
    types = [e["type"] for e in sent]
    failed = next(e for e in sent if e["type"] == "conversation.item.input_audio_transcription.failed")
    error = next(e for e in sent if e["type"] == "error")
    assert types.index(failed["type"]) < types.index("error")
    committed = [e for e in sent if e["type"] == "input_audio_buffer.committed"]
    assert failed["item_id"] == committed[0]["item_id"] and failed["error"]["code"] == "unsupported"
    assert error["error"]["event_id"] == "evt_fr" and error["error"]["code"] == "unsupported"
    assert error["error"]["param"] == "session.audio.input.transcription.language"
    done = sent[-1]  # the session went on: the English turn is heard
    assert done["type"] == "conversation.item.input_audio_transcription.completed"
    assert done["item_id"] == committed[1]["item_id"] and done["transcript"] == "hello there"


def test_a_language_no_whisper_hears_is_an_error_event(server: LiveServer) -> None:
    """The real transcriber without the multilingual model: French input audio is refused with how to get the
    model (never a silent English transcript), and the session goes on."""
    client = server.client(max_retries=0)
    french: dict[str, Any] = {"type": "realtime", "audio": {"input": {"transcription": {"language": "fr"}}}}
    with client.realtime.connect(model="gpt-realtime-2.1-mini") as conn:
        conn.session.update(session=french)  # type: ignore[arg-type]
        assert conn.recv().type == "session.created"
        assert conn.recv().type == "session.updated"
        conn.input_audio_buffer.append(audio=base64.b64encode(bytes(24000)).decode())
        conn.input_audio_buffer.commit(event_id="evt_fr")
        events: list[dict[str, Any]] = []
        for event in conn:
            events.append(event.to_dict())
            if event.type == "error":
                break
        conn.session.update(session={"type": "realtime", "instructions": "still here"})
        assert conn.recv().type == "session.updated"
    failed = next(e for e in events if e["type"] == "conversation.item.input_audio_transcription.failed")
    error = events[-1]["error"]
    assert error["event_id"] == "evt_fr" and error["param"] == "session.audio.input.transcription.language"
    assert "download" in error["message"] and failed["error"]["message"] == error["message"]
    assert not any(e["type"] == "conversation.item.input_audio_transcription.completed" for e in events)
