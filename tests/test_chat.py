"""The chat proxy against a real LLM server process (`transformers serve`, tests/llm_upstream.py), with
the official SDK: pass-through, streaming frame by frame, merged model list, and every upstream failure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import LiveServer
from tests.llm_upstream import MODEL_ID, Upstream
from tests.tcp_tap import TcpTap
from tests.test_errors import assert_envelope

pytestmark = pytest.mark.slow
MESSAGES = [{"role": "user", "content": "Tell me about the river."}]


def test_chat_completion_passes_through(chat_server: LiveServer, llm: Upstream) -> None:
    client = chat_server.client(max_retries=0)
    completion = client.chat.completions.create(model=MODEL_ID, messages=MESSAGES, max_tokens=8)  # type: ignore[arg-type]
    direct = httpx.post(f"{llm.url}/chat/completions", json={"model": MODEL_ID, "messages": MESSAGES, "max_tokens": 8},
                        timeout=60).json()  # fmt: skip
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content  # greedy decoding: the upstream's own answer
    assert completion.choices[0].message.content == direct["choices"][0]["message"]["content"]


def test_chat_stream_is_relayed_chunk_by_chunk(chat_server: LiveServer) -> None:
    client = chat_server.client(max_retries=0)
    stream = client.chat.completions.create(model=MODEL_ID, messages=MESSAGES, max_tokens=12, stream=True)  # type: ignore[arg-type]
    chunks = list(stream)
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) >= 10  # one frame per token, not one buffered chunk
    assert chunks[-1].choices[0].finish_reason == "length"


def test_models_lists_chat_and_tts_models(chat_server: LiveServer) -> None:
    ids = {model.id for model in chat_server.client().models.list()}
    assert {MODEL_ID, "tts-1", "tts-1-hd", "gpt-4o-mini-tts", "hibari"} <= ids
    assert chat_server.client().models.retrieve(MODEL_ID).id == MODEL_ID


def test_upstream_error_body_reaches_the_client_as_an_envelope(chat_server: LiveServer) -> None:
    # transformers serve answers an unknown model with a plain-text 500
    response = httpx.post(f"{chat_server.url}/v1/chat/completions", timeout=60,
                          json={"model": "no/such-model", "messages": MESSAGES})  # fmt: skip
    assert response.status_code == 500  # the upstream's status, passed on
    assert_envelope(response.json(), "upstream_error")


def test_chat_without_upstream_says_how_to_configure_it(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="any", messages=MESSAGES)  # type: ignore[arg-type]
    assert info.value.status_code == 503
    assert "TTS_STUDIO_CHAT_UPSTREAM" in info.value.message


@pytest.mark.parametrize("body", ["not json", "[1, 2]"])
def test_chat_bad_body_is_400(chat_server: LiveServer, body: str) -> None:
    response = httpx.post(f"{chat_server.url}/v1/chat/completions", content=body,
                          headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 400
    assert_envelope(response.json(), "invalid_json")


def test_killed_upstream_is_502_and_speech_still_works(
    llm_home: Path, live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    upstream = Upstream(llm_home, tmp_path / "serve.log").start()
    try:
        live = live_server(chat_upstream=upstream.url)
        client = live.client(max_retries=0)
        client.chat.completions.create(model=MODEL_ID, messages=MESSAGES, max_tokens=2)  # type: ignore[arg-type]
    finally:
        upstream.stop()
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model=MODEL_ID, messages=MESSAGES, stream=stream)  # type: ignore[arg-type]
        assert info.value.status_code == 502
    audio = client.audio.speech.create(model="tts-1", voice="alloy", input="Still speaking.", response_format="wav")
    assert len(audio.content) > 10_000
    assert "tts-1" in {model.id for model in client.models.list()}
    health = httpx.get(f"{live.url}/health").json()
    assert health["chat_upstream"]["reachable"] is False


def test_stalled_upstream_is_504(llm: Upstream, live_server: Callable[..., LiveServer]) -> None:
    live = live_server(chat_upstream=llm.url, chat_timeout_seconds=1.0)
    client = live.client(max_retries=0)
    llm.pause()  # the kernel still accepts connections; nothing answers
    try:
        for stream in (False, True):
            with pytest.raises(openai.APIStatusError) as info:
                # (max_tokens: the resumed upstream still answers these, and must be idle again soon)
                client.chat.completions.create(model=MODEL_ID, messages=MESSAGES, stream=stream, max_tokens=2)  # type: ignore[arg-type]
            assert info.value.status_code == 504
    finally:
        llm.resume()


def test_client_disconnect_cancels_the_upstream_request(llm: Upstream, live_server: Callable[..., LiveServer]) -> None:
    tap = TcpTap(llm.port)
    try:
        live = live_server(chat_upstream=tap.url())
        # long enough to be mid-stream when the client leaves, short enough that the upstream (which goes on
        # generating for a client that left) is idle again before the next tests
        body = {"model": MODEL_ID, "messages": MESSAGES, "stream": True, "max_tokens": 300}
        with (
            httpx.Client(timeout=60) as http,
            http.stream("POST", f"{live.url}/v1/chat/completions", json=body) as response,
        ):
            assert response.status_code == 200
            next(response.iter_raw())  # the first frames arrived; now the client goes away
        link = tap.links[-1]
        assert link.studio_closed.wait(20), "the studio kept reading the upstream after its client left"
        assert link.first_closer == "studio"
        # twenty abandoned streams leave nothing behind: the next request is answered normally
        for _ in range(20):
            with (
                httpx.Client(timeout=60) as http,
                http.stream("POST", f"{live.url}/v1/chat/completions", json={**body, "max_tokens": 20}) as response,
            ):
                next(response.iter_raw())
        answer = live.client(max_retries=0).chat.completions.create(model=MODEL_ID, messages=MESSAGES, max_tokens=4)  # type: ignore[arg-type]
        assert answer.choices[0].message.content
    finally:
        tap.close()


def test_chat_requires_the_key(llm: Upstream, live_server: Callable[..., LiveServer]) -> None:
    live = live_server(chat_upstream=llm.url, api_key="sk-test")
    response = httpx.post(f"{live.url}/v1/chat/completions", json={"model": MODEL_ID, "messages": MESSAGES})
    assert response.status_code == 401
    assert_envelope(response.json(), "invalid_api_key")
    ok = live.client(api_key="sk-test", max_retries=0).chat.completions.create(
        model=MODEL_ID,
        messages=MESSAGES,
        max_tokens=2,  # type: ignore[arg-type]
    )
    assert ok.choices[0].message.content is not None


def test_upstream_422_is_a_400_with_its_message(chat_server: LiveServer) -> None:
    # transformers serve refuses keys it does not know with 422 {"detail": ...}; OpenAI clients expect a 400
    body = {"model": MODEL_ID, "messages": MESSAGES, "bogus_key": 1}
    response = httpx.post(f"{chat_server.url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400, response.text
    error = assert_envelope(response.json(), "upstream_error")
    assert "bogus_key" in error["message"]
