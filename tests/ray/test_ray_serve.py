"""The studio on a two-node Ray cluster: the same API through Serve's proxy, engines on the node that has their
resources, clients that leave free the engine replica, a replica killed under load, shared voices."""

from __future__ import annotations

import asyncio
import base64
import re
import threading
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import decode, words
from tests.doubles import wait_for
from tests.ray.cluster import GPU_STANDIN
from tests.ray.conftest import KEY, RayStudio
from tests.test_realtime import SESSION, _until, _user_text

SENTENCE = "The quick brown fox jumps over the lazy dog."
LONG = " ".join(f"This is sentence number {n} of a long story about a quiet valley." for n in range(1, 41))


def _client(studio: RayStudio) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{studio.url}/v1", api_key=KEY, max_retries=0, timeout=120)


def _speak(studio: RayStudio, text: str, **body: Any) -> httpx.Response:
    payload = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "pcm", **body}
    return httpx.post(f"{studio.url}/v1/audio/speech", json=payload, headers=studio.headers, timeout=180)


def test_each_engine_runs_on_the_node_that_has_its_resource(studio: RayStudio) -> None:
    import ray

    gpu_nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"] and node["Resources"].get(GPU_STANDIN)}
    head_nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"] and not node["Resources"].get(GPU_STANDIN)}
    assert len(gpu_nodes) == 1 and len(head_nodes) == 1
    for engine_id in ("hibari", "pocket"):
        assert studio.engine_stats(engine_id)["node_id"] in gpu_nodes


def test_the_sdk_speaks_streams_and_transcribes_through_the_proxy(studio: RayStudio) -> None:
    client = _client(studio)
    assert "tts-1" in {model.id for model in client.models.list()}
    wav = client.audio.speech.create(model="tts-1", voice="alloy", input=SENTENCE, response_format="wav").content
    assert wav[:4] == b"RIFF"
    samples, rate = decode(wav, "wav")
    assert rate == 24000 and len(samples) > rate  # more than a second of speech

    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=SENTENCE, response_format="pcm"
    ) as response:
        assert response.headers["content-type"].startswith("audio/pcm")
        pcm = b"".join(response.iter_bytes())
    assert len(pcm) % 2 == 0 and len(pcm) > 48000

    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=SENTENCE, stream_format="sse"
    ) as response:
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert '"speech.audio.delta"' in events[0] and '"speech.audio.done"' in events[-1]

    heard = client.audio.transcriptions.create(model="whisper-1", file=("fox.wav", wav, "audio/wav"))
    assert len(set(words(heard.text).split()) & set(words(SENTENCE).split())) >= 4, heard.text


def test_errors_auth_and_the_browser_guard_are_the_single_process_ones(studio: RayStudio) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        _client(studio).audio.speech.create(model="tts-1", voice="alloy", input="")
    assert bad.value.status_code == 400 and bad.value.body["param"] == "input"  # type: ignore[index]
    for method, path in (("GET", "/v1/models"), ("POST", "/v1/audio/speech")):  # the owner, a speech replica
        response = httpx.request(method, f"{studio.url}{path}", json={}, timeout=30)
        assert response.status_code == 401 and set(response.json()["error"]) == {"message", "type", "param", "code"}
    foreign = httpx.get(
        f"{studio.url}/v1/models", headers={**studio.headers, "Origin": "https://evil.example"}, timeout=30
    )
    assert foreign.status_code == 403
    assert httpx.get(f"{studio.url}/ui/", timeout=60).status_code == 200  # the UI, from the one owner replica


def test_realtime_speaks_and_hears_through_the_proxy(studio: RayStudio) -> None:
    client = _client(studio)
    pcm = client.audio.speech.create(model="tts-1", voice="alloy", input=SENTENCE, response_format="pcm").content
    with client.realtime.connect(model="gpt-realtime") as conn:
        assert conn.recv().type == "session.created"
        conn.session.update(session=SESSION)  # type: ignore[arg-type]
        conn.conversation.item.create(item=_user_text(SENTENCE))  # type: ignore[arg-type]
        conn.response.create()
        spoken = _until(iter(conn), "response.done")
        for start in range(0, len(pcm), 24000):
            conn.input_audio_buffer.append(audio=base64.b64encode(pcm[start : start + 24000]).decode())
        conn.input_audio_buffer.commit()
        heard = _until(iter(conn), "conversation.item.input_audio_transcription.completed")
    assert spoken[-1].response.status == "completed"
    assert sum(len(base64.b64decode(e.delta)) for e in spoken if e.type == "response.output_audio.delta") > 24000
    assert len(set(words(heard[-1].transcript).split()) & set(words(SENTENCE).split())) >= 4


def test_wyoming_speaks_and_transcribes_from_the_owner_replica(studio: RayStudio) -> None:
    from wyoming.asr import Transcribe, Transcript
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.tts import Synthesize, SynthesizeVoice

    async def until(client: AsyncTcpClient, kind: str) -> list[Any]:
        events = []
        while (event := await asyncio.wait_for(client.read_event(), 120)) is not None:
            events.append(event)
            if event.type == kind:
                return events
        raise AssertionError(f"the server closed the connection before {kind}")

    async def go() -> tuple[bytes, str]:
        port = studio.settings.wyoming_port
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize(text=SENTENCE, voice=SynthesizeVoice(name="nova")).event())
            events = await until(client, "audio-stop")
        audio = b"".join(AudioChunk.from_event(e).audio for e in events if AudioChunk.is_type(e.type))
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Transcribe(language="en").event())
            await client.write_event(AudioStart(rate=24000, width=2, channels=1).event())
            await client.write_event(AudioChunk(rate=24000, width=2, channels=1, audio=audio).event())
            await client.write_event(AudioStop().event())
            text = Transcript.from_event((await until(client, "transcript"))[-1]).text
        return audio, text

    audio, text = asyncio.run(go())
    assert len(audio) > 48000
    assert len(set(words(text).split()) & set(words(SENTENCE).split())) >= 4, text


def test_a_full_engine_deployment_answers_503_with_retry_after(studio: RayStudio) -> None:
    """pocket takes one stream at a time and queues one per caller: a burst of 8 gets 503s, never a hang."""
    answers: list[httpx.Response] = []
    together = threading.Barrier(8)

    def ask() -> None:
        together.wait(timeout=60)
        answers.append(_speak(studio, "Hi there.", model="pocket"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)
    statuses = sorted(answer.status_code for answer in answers)
    assert set(statuses) == {200, 503}, statuses
    for answer in answers:
        if answer.status_code == 503:
            assert int(answer.headers["Retry-After"]) >= 1 and answer.json()["error"]["code"] == "device_busy"


def test_a_client_that_hangs_up_mid_stream_frees_the_engine_replica(studio: RayStudio) -> None:
    before = studio.engine_stats("hibari")
    calls_before = before["served"] + before["cancelled"] + before["failed"]
    with httpx.stream(
        "POST",
        f"{studio.url}/v1/audio/speech",
        json={"model": "tts-1", "voice": "alloy", "input": LONG, "response_format": "pcm"},
        headers=studio.headers,
        timeout=60,
    ) as response:
        assert response.status_code == 200
        next(response.iter_raw())  # the first audio, then the client is gone

    def idle() -> bool:
        stats = studio.engine_stats("hibari")
        return stats["active"] == 0 and stats["leases"] == 0

    wait_for(idle, timeout=60)
    after = studio.engine_stats("hibari")
    # 40 sentences were asked for; the replica stopped after the few in flight when the client left
    assert after["served"] + after["cancelled"] + after["failed"] - calls_before < 10, after
    assert _speak(studio, SENTENCE).status_code == 200


def test_a_voice_uploaded_through_the_owner_is_spoken_by_the_speech_replicas(studio: RayStudio) -> None:
    clip = _speak(studio, SENTENCE, response_format="wav").content
    uploaded = httpx.post(
        f"{studio.url}/v1/audio/voices",
        data={"name": "Ray Voice", "transcript": SENTENCE, "consent": "true"},
        files={"audio_sample": ("me.wav", clip, "audio/wav")},
        headers=studio.headers,
        timeout=60,
    )
    assert uploaded.status_code == 200, uploaded.text
    voice = uploaded.json()["id"]
    for _ in range(4):  # the speech replicas loaded their library before the upload
        spoken = _speak(studio, "Hi there.", model="pocket", voice=voice)
        assert spoken.status_code == 200, spoken.text
        assert len(spoken.content) > 0
    # the reference travelled with the request: the engine node stored its own copy
    assert any(studio.node_cache.glob("ray-references/*/reference.wav"))


def test_killing_the_engine_replica_under_eight_streams(studio: RayStudio) -> None:
    import ray

    project = httpx.post(
        f"{studio.url}/v1/projects",
        json={"name": "Survives", "script": "\n".join(f"Line {n} of the story is here." for n in range(1, 7))},
        headers=studio.headers,
        timeout=60,
    )
    assert project.status_code == 201, project.text
    project_id = project.json()["id"]
    voices_before = httpx.get(f"{studio.url}/v1/audio/voices", headers=studio.headers, timeout=30).json()

    results: list[Any] = [None] * 8
    streaming = threading.Barrier(9)

    def stream(i: int) -> None:
        try:
            with httpx.stream(
                "POST",
                f"{studio.url}/v1/audio/speech",
                json={"model": "tts-1", "voice": "alloy", "input": LONG[:1200], "response_format": "pcm"},
                headers=studio.headers,
                timeout=120,
            ) as response:
                got = 0
                for i_chunk, chunk in enumerate(response.iter_raw()):
                    got += len(chunk)
                    if i_chunk == 0:
                        streaming.wait(timeout=120)
                results[i] = (response.status_code, got)
        except (httpx.HTTPError, threading.BrokenBarrierError) as exc:
            results[i] = (type(exc).__name__, 0)

    threads = [threading.Thread(target=stream, args=(i,), daemon=True) for i in range(8)]
    for thread in threads:
        thread.start()
    streaming.wait(timeout=180)  # every stream has its first audio
    render = httpx.post(f"{studio.url}/v1/projects/{project_id}/render", headers=studio.headers, timeout=30)
    assert render.status_code == 202
    for actor in studio.replica_actors("hibari"):
        ray.kill(actor, no_restart=True)
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a request hung after its replica was killed"
    assert all(result is not None for result in results)

    def recovered() -> bool:
        return _speak(studio, "Are you back?").status_code == 200

    wait_for(recovered, timeout=120)
    after: list[httpx.Response] = []
    burst = [threading.Thread(target=lambda: after.append(_speak(studio, SENTENCE))) for _ in range(8)]
    for thread in burst:
        thread.start()
    for thread in burst:
        thread.join(timeout=300)
    assert [response.status_code for response in after] == [200] * 8
    assert len({len(response.content) for response in after}) == 1  # every one whole, the same audio

    def rendered() -> bool:
        status = httpx.get(f"{studio.url}/v1/projects/{project_id}", headers=studio.headers, timeout=30).json()
        return bool(status["status"] in ("done", "failed"))

    wait_for(rendered, timeout=300)
    final = httpx.get(f"{studio.url}/v1/projects/{project_id}", headers=studio.headers, timeout=30).json()
    assert final["status"] == "done", final.get("error")
    lines = [line for chapter in final["chapters"] for line in chapter["lines"]]
    assert len(lines) == 6 and all(line["status"] in ("done", "flagged") for line in lines), lines
    voices_after = httpx.get(f"{studio.url}/v1/audio/voices", headers=studio.headers, timeout=30).json()
    assert voices_after == voices_before


@pytest.mark.browser
def test_the_ui_through_the_proxy_signs_in_and_speaks(studio: RayStudio) -> None:
    """The one owner replica serves the UI: Chromium signs in with the key, speaks, and loads nothing from
    outside the machine."""
    from playwright.sync_api import expect, sync_playwright

    from tests.ui_helpers import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            outside: list[str] = []
            local = ("http://127.0.0.1", "blob:", "data:")
            page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(local) else None)
            page.goto(f"{studio.url}/ui/")
            page.locator("input[type='text']").first.fill("listener")
            page.locator("input[type='password']").first.fill(KEY)
            page.keyboard.press("Enter")
            page.locator("#tts-text textarea").fill("Hello from the cluster.")
            page.locator("#gen-btn").click()
            spoken = re.compile(r"s of audio in .* hibari")
            expect(page.locator("#gen-info textarea")).to_have_value(spoken, timeout=60_000)
            assert outside == [], outside
        finally:
            browser.close()


def test_mcp_speaks_and_transcribes_through_the_proxy(studio: RayStudio) -> None:
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def go() -> tuple[Any, Any]:
        async with (
            httpx2.AsyncClient(headers=studio.headers, timeout=120) as http,
            Client(streamable_http_client(f"{studio.url}/mcp", http_client=http)) as client,
        ):
            spoken = await client.call_tool("speak", {"text": SENTENCE, "voice": "nova", "format": "wav"})
            audio = next(block for block in spoken.content if block.type == "audio")
            return spoken, await client.call_tool("transcribe", {"audio_base64": audio.data})

    spoken, heard = anyio.run(go)
    assert not spoken.is_error and not heard.is_error
    text = "".join(block.text for block in heard.content if block.type == "text")
    assert len(set(words(text).split()) & set(words(SENTENCE).split())) >= 4, text


def test_the_serve_config_is_one_serve_deploy_accepts() -> None:
    import yaml

    schemas = pytest.importorskip("ray.serve.schema", reason="needs ray (.venv-engines has it)")

    path = Path(__file__).parent.parent.parent / "deploy" / "serve.yaml"
    schema = schemas.ServeDeploySchema.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert [app.route_prefix for app in schema.applications] == ["/", "/v1/audio/speech"]
