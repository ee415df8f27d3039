"""Inputs found to give 500s, broken names or leaks: each now gets a clear 4xx (or works) and loses nothing."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.cloning import cloning_registry
from tests.conftest import PARAGRAPH, InProcess, LiveServer, decode
from tests.test_errors import _registry, assert_envelope
from tts_studio.config import Settings, exposed_without_key
from tts_studio.services.transcription import Segment, Transcript

VOICES = Path(__file__).resolve().parents[1] / "voices"
DEEP = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
SPEECH = {"model": "tts-1", "voice": "alloy", "input": "Hello.", "response_format": "pcm"}


def _post(studio: InProcess, path: str, body: bytes, method: str = "POST") -> httpx.Response:
    return studio.request(method, f"/v1{path}", content=body, headers={"Content-Type": "application/json"})


def test_deeply_nested_json_is_400_everywhere(app_client: InProcess) -> None:
    for method, path in (("POST", "/audio/speech"), ("PATCH", "/audio/voices/bundled_heart"),
                         ("PUT", "/audio/voice_map/alloy")):  # fmt: skip
        response = _post(app_client, path, DEEP, method)
        assert response.status_code == 400, path
        assert_envelope(response.json(), "invalid_json")
    nested = json.dumps({**SPEECH, "extra": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]})
    assert _post(app_client, "/audio/speech", nested.encode()).status_code == 400


@pytest.mark.parametrize("raw", [b'"\\udfff"', b'"\\ud800"', b'"a\\ud83d"'])
def test_lone_surrogates_are_400_and_never_echoed(app_client: InProcess, raw: bytes) -> None:
    speech = _post(app_client, "/audio/speech", b'{"model":"tts-1","input":"Hi.","voice":' + raw + b"}")
    assert speech.status_code == 400
    assert_envelope(speech.json(), "invalid_json")
    assert_envelope(
        _post(app_client, "/audio/voice_map/alloy", b'{"voice":' + raw + b"}", "PUT").json(), "invalid_json"
    )
    unknown = app_client.get("/v1/audio/voices/%ED%A0%80")
    assert unknown.status_code == 404  # a path that is not UTF-8 is just an unknown voice


@pytest.mark.parametrize(
    "text", ["1" * 37 + " apples.", "Call 123,456,789,012,345,678,901,234,567,890,123 now.", "9" * 400, "0." + "5" * 60]
)
def test_numbers_of_any_length_are_spoken(sdk: Any, text: str) -> None:
    audio = sdk.audio.speech.create(model="tts-1", voice="alloy", input=text, response_format="pcm").content
    assert len(audio) > 24000  # at least half a second of speech


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:99999/x.wav", "http://[::1]:abc/x", "http://[oops/x", "http://:80/x"]
)
def test_malformed_voice_url_is_400(app_factory: Callable[..., InProcess], url: str) -> None:
    studio = app_factory(registry=cloning_registry(), voice_url_enabled=True)
    response = studio.post("/v1/audio/speech", json={**SPEECH, "model": "echo-clone", "voice_url": url})
    assert response.status_code == 400
    assert_envelope(response.json(), param="voice_url")


def test_connection_survives_a_500(live_server: Callable[..., LiveServer]) -> None:
    live = live_server(registry=_registry())
    with httpx.Client() as http:
        crashed = http.post(f"{live.base_url}/audio/speech", json={**SPEECH, "model": "broken", "voice": "heart"})
        assert crashed.status_code == 500 and crashed.headers.get("connection") != "close"
        assert http.get(f"{live.url}/health").status_code == 200


def test_voice_names_never_shadow_openai_or_engine_names(app_factory: Callable[..., InProcess]) -> None:
    studio = app_factory(registry=cloning_registry())
    clip = (VOICES / "lark.flac").read_bytes()

    def upload(name: str) -> httpx.Response:
        files = {"audio_sample": ("v.flac", clip, "audio/flac")}
        return studio.post("/v1/audio/voices", data={"name": name, "transcript": "x"}, files=files)

    for name in ("Alloy", "nova", "HEART"):
        assert_envelope(upload(name).json(), "reserved_name", "name")
    mine = upload("Mine").json()["id"]
    renamed = studio.patch(f"/v1/audio/voices/{mine}", json={"name": "nova"})
    assert renamed.status_code == 400 and renamed.json()["error"]["code"] == "reserved_name"
    assert studio.put("/v1/audio/voice_map/echo", json={"voice": mine}).status_code == 200
    # echo points at a clone; the embedded engine cannot clone, so it falls back to its defaults
    on_cpu = studio.post("/v1/audio/speech", json={**SPEECH, "voice": "echo"})
    assert on_cpu.status_code == 200 and len(on_cpu.content) > 0
    for voice in ("alloy", "nova", mine, "Mine"):
        assert (
            studio.post("/v1/audio/speech", json={**SPEECH, "model": "echo-clone", "voice": voice}).status_code == 200
        )


def test_listing_shows_only_what_can_be_spoken(app_client: InProcess) -> None:
    shown = app_client.get("/v1/audio/voices").json()["voices"]
    ids = {v["id"] for v in shown}
    assert {"alloy", "nova", "heart"} <= ids and not ids & {"bundled_heart", "bundled_dusk", "bundled_lark"}
    assert all(v["engines"] and v["speakable"] for v in shown)
    everything = app_client.get("/v1/audio/voices", params={"all": "true"}).json()["voices"]
    hidden = next(v for v in everything if v["id"] == "bundled_dusk")
    assert hidden["speakable"] is False and "cloning engine" in hidden["reason"]
    refused = app_client.post("/v1/audio/speech", json={**SPEECH, "voice": "bundled_dusk"}).json()
    message = refused["error"]["message"]
    assert message.count("(") == message.count(")") and refused["error"]["code"] == "voice_not_supported"


def test_voice_upload_limits_match_edit_limits(app_factory: Callable[..., InProcess]) -> None:
    studio = app_factory(registry=cloning_registry())
    files = {"audio_sample": ("v.flac", (VOICES / "lark.flac").read_bytes(), "audio/flac")}
    for field, value in (("language", "x" * 1000), ("transcript", "word " * 20_000), ("language", "en<script>")):
        response = studio.post("/v1/audio/voices", data={"name": "Limits", field: value}, files=files)
        assert response.status_code == 400
        assert_envelope(response.json(), param=field)
    assert not [v for v in studio.get("/v1/audio/voices").json()["voices"] if v["name"] == "Limits"]


def _sse_events(body: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]


def test_streamed_transcript_deltas_join_to_the_final_text(app_client: InProcess, sdk: Any) -> None:
    mp3 = sdk.audio.speech.create(model="tts-1", voice="alloy", input=PARAGRAPH).content
    response = app_client.post(
        "/v1/audio/transcriptions",
        data={"model": "gpt-4o-mini-transcribe", "stream": "true"},
        files={"file": ("s.mp3", mp3, "audio/mpeg")},
    )
    events = _sse_events(response.text)
    deltas = [e["delta"] for e in events if e["type"] == "transcript.text.delta"]
    assert len(deltas) >= 1 and "".join(deltas) == events[-1]["text"] and not deltas[0].startswith(" ")


def test_text_deltas_skip_empty_segments() -> None:
    from tts_studio.api.routes.transcriptions import text_deltas

    segs = tuple(Segment(i, 0, 1, t, 0, 0, 0, 0, ()) for i, t in enumerate([" Hello", " ", " world."]))
    transcript = Transcript("Hello world.", "en", 2.0, segs, ())
    assert text_deltas(transcript) == ["Hello", " world."]


class _BlockingTranscriber:
    """Holds every transcription until released, so a second request meets a full admission limit."""

    loaded = True

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def transcribe(self, audio: Any, *args: Any, **kwargs: Any) -> Transcript:
        self.entered.set()
        assert self.release.wait(30)
        return Transcript("ok", "en", audio.duration, (), ())

    def status(self) -> dict[str, Any]:
        """What /health reads from the real transcriber."""
        busy = self.entered.is_set() and not self.release.is_set()
        return {"model": "blocking", "loaded": True, "in_use": int(busy), "queued": 0}


def test_transcriptions_have_admission_control(app_factory: Callable[..., InProcess]) -> None:
    studio = app_factory(max_active_transcriptions=1)
    blocking = _BlockingTranscriber()
    studio.app.state.transcriber = blocking
    wav = io.BytesIO()
    tone = 0.3 * np.sin(np.arange(24000) * 2 * np.pi * 220 / 24000).astype(np.float32)
    sf.write(wav, tone, 24000, format="WAV")
    form = {"data": {"model": "whisper-1"}, "files": {"file": ("a.wav", wav.getvalue(), "audio/wav")}}
    first: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: first.append(studio.post("/v1/audio/transcriptions", **form)))
    worker.start()
    try:
        assert blocking.entered.wait(30)
        second = studio.post("/v1/audio/transcriptions", **form)
        assert second.status_code == 429 and second.headers["retry-after"]
        assert_envelope(second.json(), "rate_limit_exceeded")
        assert studio.get("/health").status_code == 200  # health answers while Whisper is busy
    finally:  # a failure above must not leave the first request (and the studio's shutdown) waiting
        blocking.release.set()
        worker.join(30)
    assert first[0].status_code == 200 and first[0].json()["text"] == "ok"


def test_chunked_upload_is_stopped_at_the_cap(server: LiveServer) -> None:
    """200 MB sent chunked (no Content-Length) is cut off with a 413 long before the end."""
    host, port = server.url.removeprefix("http://").split(":")
    boundary = "xyz"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n').encode()
    sent = 0
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            + f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode()
        )
        chunk = head + b"\0" * (1 << 20)
        sock.settimeout(0.0)
        reply = b""
        try:
            while sent < 200 << 20 and not reply:
                frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
                sock.settimeout(10)
                sock.sendall(frame)
                sent += len(chunk)
                chunk = b"\0" * (1 << 20)
                sock.settimeout(0.0)
                with contextlib.suppress(BlockingIOError):
                    reply = sock.recv(4096)
        except OSError:
            pass  # the server closed the connection: fine, read what it said
        sock.settimeout(10)
        while b"\r\n\r\n" not in reply:
            more = sock.recv(4096)
            if not more:
                break
            reply += more
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert sent < 64 << 20


def test_empty_api_key_means_no_key(tmp_path: Path) -> None:
    assert Settings(api_key="", data_dir=tmp_path).api_key is None
    assert Settings(api_key="  ", data_dir=tmp_path).api_key is None
    key_file = tmp_path / "key"
    key_file.write_text("s3cret\n")
    assert Settings(api_key_file=key_file).key == "s3cret"
    assert exposed_without_key(Settings(host="0.0.0.0")) and not exposed_without_key(Settings(host="127.0.0.1"))
    assert not exposed_without_key(Settings(host="0.0.0.0", api_key="k"))


def test_key_file_protects_every_route(app_factory: Callable[..., InProcess], tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("s3cret")
    studio = app_factory(api_key_file=key_file)
    for path in ("/v1/models", "/openapi.json", "/docs"):
        assert studio.get(path).status_code == 401
        assert studio.get(path, headers={"Authorization": "Bearer"}).status_code == 401
        assert studio.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_streamed_wav_has_a_canonical_44_byte_header(sdk: Any) -> None:
    wav = sdk.audio.speech.create(model="tts-1", voice="alloy", input="Hello there.", response_format="wav").content
    assert wav[:4] == b"RIFF" and wav[8:16] == b"WAVEfmt " and wav[36:40] == b"data"
    samples, rate = decode(wav, "wav")
    assert rate == 24000 and len(samples) == (len(wav) - 44) // 2
    with av.open(io.BytesIO(wav)) as container:
        assert container.streams.audio[0].rate == 24000


def test_openapi_documents_every_body_and_no_422(app_client: InProcess) -> None:
    doc = app_client.get("/openapi.json").json()
    assert "422" not in json.dumps(doc["paths"]) and "HTTPValidationError" not in json.dumps(doc)
    bodies = {
        ("post", "/v1/audio/speech"): "application/json",
        ("post", "/v1/audio/voices"): "multipart/form-data",
        ("patch", "/v1/audio/voices/{voice_id}"): "application/json",
        ("put", "/v1/audio/voice_map/{name}"): "application/json",
        ("post", "/v1/audio/transcriptions"): "multipart/form-data",
    }
    for (method, path), media in bodies.items():
        operation = doc["paths"][path][method]
        assert media in operation["requestBody"]["content"], path
        assert {"400", "403", "413", "415", "500"} <= set(operation["responses"]), path
    assert "429" in doc["paths"]["/v1/audio/speech"]["post"]["responses"]


def test_docs_page_is_local(app_client: InProcess) -> None:
    page = app_client.get("/docs")
    assert page.status_code == 200 and "/v1/audio/speech" in page.text
    assert "cdn" not in page.text.lower() and "<script" not in page.text.lower()
    assert app_client.get("/redoc").status_code == 404
