"""`POST /v1/responses` with the official SDK: a TTS model speaks the input, a chat model (a real upstream
LLM server) speaks its reply; JSON and the SSE event sequence; unsupported features are 400s."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import jiwer
import numpy as np
import openai
import pytest

from tests.conftest import LiveServer, decode, hear, words
from tests.llm_upstream import MODEL_ID, Upstream
from tests.test_errors import assert_envelope

AUDIO = {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}}
PCM = {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "pcm16"}}
SENTENCE = "The garden is quiet in the morning."


def _audio_part(response: Any) -> dict[str, Any]:
    message = response.output[0]
    parts = [part.to_dict() if hasattr(part, "to_dict") else part for part in message.content]
    return next(part for part in parts if part["type"] == "output_audio")


def test_tts_model_speaks_the_input(client: openai.OpenAI, whisper: Any) -> None:
    response = client.responses.create(model="gpt-4o-mini-tts", input=SENTENCE, extra_body=AUDIO)
    assert response.object == "response" and response.status == "completed"
    part = _audio_part(response)
    samples, rate = decode(base64.b64decode(part["audio"]), "wav")
    assert rate == 24000
    assert jiwer.wer(words(SENTENCE), hear(whisper, samples, rate)) <= 0.2
    assert words(part["transcript"]) == words(SENTENCE)
    assert response.output_text == part["transcript"]


def test_tts_model_message_input_streams_the_event_sequence(client: openai.OpenAI, whisper: Any) -> None:
    message = [{"role": "user", "content": [{"type": "input_text", "text": SENTENCE}]}]
    events = list(client.responses.create(model="tts-1", input=message, stream=True, extra_body=PCM))  # type: ignore[arg-type]
    types = [event.type for event in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event for event in events if event.type == "response.audio.delta"]
    assert deltas and types.index("response.audio.done") > types.index(deltas[-1].type) - 1
    assert max(i for i, t in enumerate(types) if t == "response.audio.delta") < types.index("response.audio.done")
    pcm = b"".join(base64.b64decode(event.delta) for event in deltas)
    assert len(pcm) % 2 == 0
    samples = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
    assert jiwer.wer(words(SENTENCE), hear(whisper, samples, 24000)) <= 0.2
    transcript = "".join(e.delta for e in events if e.type == "response.audio.transcript.delta")
    done = next(e for e in events if e.type == "response.audio.transcript.done")
    assert transcript == done.transcript and words(transcript) == words(SENTENCE)
    assert events[-1].response.status == "completed"  # type: ignore[union-attr]


def _upstream_reply(llm: Upstream, text: str, max_tokens: int) -> str:
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens}
    reply = httpx.post(f"{llm.url}/chat/completions", json=body, timeout=60).json()
    return str(reply["choices"][0]["message"]["content"])


@pytest.mark.slow
def test_chat_model_speaks_the_llm_reply(chat_server: LiveServer, llm: Upstream, whisper: Any) -> None:
    client = chat_server.client(max_retries=0)
    response = client.responses.create(model=MODEL_ID, input="Hello there.", max_output_tokens=12, extra_body=AUDIO)
    expected = _upstream_reply(llm, "Hello there.", 12)  # greedy: the same words as the reply spoken
    part = _audio_part(response)
    assert words(part["transcript"]) == words(expected) != words("Hello there.")
    samples, rate = decode(base64.b64decode(part["audio"]), "wav")
    assert len(samples) / rate > 1.0
    assert response.output_text == part["transcript"]


@pytest.mark.slow
def test_chat_model_stream(chat_server: LiveServer, llm: Upstream) -> None:
    client = chat_server.client(max_retries=0)
    events = list(client.responses.create(model=MODEL_ID, input="Hello there.", max_output_tokens=12, stream=True,
                                          extra_body=PCM))  # fmt: skip
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert sum(1 for e in events if e.type == "response.audio.delta") >= 1
    transcript = "".join(e.delta for e in events if e.type == "response.audio.transcript.delta")
    assert words(transcript) == words(_upstream_reply(llm, "Hello there.", 12))


@pytest.mark.slow
def test_chat_model_without_audio_answers_text(chat_server: LiveServer, llm: Upstream) -> None:
    response = chat_server.client(max_retries=0).responses.create(model=MODEL_ID, input="Hi.", max_output_tokens=6)
    assert words(response.output_text) == words(_upstream_reply(llm, "Hi.", 6))


def test_chat_model_without_upstream_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model="llama3", input="Hi.", extra_body=AUDIO)
    assert "TTS_STUDIO_CHAT_UPSTREAM" in info.value.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
         "input[0].content[0].type"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
         "input[0].content[0].type"),
        ({"audio": {"voice": "alloy", "format": "aiff"}}, "audio.format"),
        ({"modalities": ["video"]}, "modalities"),
        ({"input": ""}, "input"),
        ({"input": "word " * 1000}, "input"),
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
    ],
)  # fmt: skip
def test_unsupported_features_are_400_naming_the_parameter(
    server: LiveServer, body: dict[str, Any], param: str
) -> None:
    request = {"model": "tts-1", "input": "Hello.", **AUDIO, **body}
    response = httpx.post(f"{server.url}/v1/responses", json=request)
    assert response.status_code == 400
    assert_envelope(response.json(), param=param)


def test_unknown_voice_is_an_envelope(server: LiveServer) -> None:
    request = {"model": "tts-1", "input": "Hello.", "audio": {"voice": "nobody-here", "format": "wav"}}
    response = httpx.post(f"{server.url}/v1/responses", json=request)
    assert response.status_code in (400, 404)
    assert_envelope(response.json())
