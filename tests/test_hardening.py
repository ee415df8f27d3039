"""Hardening found by hostile-input probes: a stalled request body is a 408 that closes its connection (on a
real socket), and voice names refuse characters that do not show as themselves and are stored as NFC."""

from __future__ import annotations

import io
import json
import socket
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
import soundfile as sf

from tests.cloning import cloning_registry
from tests.conftest import InProcess, LiveServer, wait_until_idle
from tests.test_errors import assert_envelope
from tts_studio.errors import InvalidRequest
from tts_studio.services.library import VoiceLibrary, clean_name

READ_TIMEOUT = 60  # seconds a reply may take on a loaded machine: far above body_timeout_seconds, not a measure
SPEECH = {"model": "tts-1", "voice": "alloy", "input": "Hi.", "response_format": "pcm"}


# -- stalled bodies ---------------------------------------------------------------------------------


def _request(method: str, path: str, content_type: str, framing: str) -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer sk-local\r\n"
        f"Content-Type: {content_type}\r\nAccept: application/json, text/event-stream\r\n{framing}\r\n\r\n"
    ).encode()


def _declared(method: str, path: str, content_type: str, sent: bytes) -> bytes:
    """Headers declaring 1000 bytes, then only `sent` (fewer)."""
    assert len(sent) < 1000
    return _request(method, path, content_type, "Content-Length: 1000") + sent


def _chunked(method: str, path: str, content_type: str, sent: bytes) -> bytes:
    """A chunked body that stops after one chunk (no terminating zero-length chunk)."""
    return (
        _request(method, path, content_type, "Transfer-Encoding: chunked")
        + f"{len(sent):x}\r\n".encode()
        + sent
        + b"\r\n"
    )


def _open(live: LiveServer, request: bytes) -> socket.socket:
    host, port = live.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=READ_TIMEOUT)
    sock.sendall(request)
    return sock


def _reply(sock: socket.socket) -> tuple[int, dict[str, str], Any]:
    """The server's whole answer, read until it closes the connection (a timeout here: it never did)."""
    data = b""
    with sock:
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


def _assert_408(sock: socket.socket) -> None:
    status, headers, body = _reply(sock)
    assert status == 408
    assert headers["connection"] == "close" and headers["content-type"] == "application/json"
    assert headers["x-request-id"]
    assert_envelope(body, "request_timeout")
    assert body["error"]["type"] == "invalid_request_error"


def _assert_healthy(live: LiveServer) -> None:
    health = wait_until_idle(live)
    assert health["active_requests"] == 0
    assert live.app.state.transcription_slots.active == 0
    speech = live.client(max_retries=0).audio.speech.create(**SPEECH)  # type: ignore[arg-type]
    assert len(speech.content) > 0


MULTIPART = "multipart/form-data; boundary=xyz"
PART = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF'


@pytest.mark.parametrize(
    "request_bytes",
    [
        _declared("POST", "/v1/audio/speech", "application/json", b'{"model":"'),
        _declared("POST", "/v1/audio/transcriptions", MULTIPART, PART),
        _chunked("POST", "/v1/audio/voices", MULTIPART, PART),
    ],
    ids=["json-content-length", "multipart-content-length", "multipart-chunked"],
)
def test_a_stalled_body_is_408_and_its_connection_closed(
    live_server: Callable[..., LiveServer], request_bytes: bytes
) -> None:
    live = live_server(body_timeout_seconds=1, max_active_requests=1, max_active_transcriptions=1)
    stalled = _open(live, request_bytes)
    # While the body hangs, the only speech slot is free: nothing is admitted before a body is complete.
    assert len(live.client(max_retries=0).audio.speech.create(**SPEECH).content) > 0  # type: ignore[arg-type]
    _assert_408(stalled)
    _assert_healthy(live)


def test_every_door_that_reads_a_body_times_out(live_server: Callable[..., LiveServer]) -> None:
    """JSON edits, a project import, the MCP endpoint and a chunked JSON body: the same 408, one middleware."""
    live = live_server(body_timeout_seconds=1)
    doors = [
        _declared("PATCH", "/v1/audio/voices/bundled_heart", "application/json", b'{"name":'),
        _declared("PUT", "/v1/audio/voice_map/alloy", "application/json", b'{"voice":'),
        _declared("POST", "/v1/projects", MULTIPART, PART.replace(b"a.wav", b"book.txt")),
        _declared("POST", "/mcp", "application/json", b'{"jsonrpc":"2.0",'),
        _chunked("POST", "/v1/audio/speech", "application/json", b'{"model":"tts-1",'),
    ]
    for request in doors:
        _assert_408(_open(live, request))
    _assert_healthy(live)


def test_a_chunked_body_that_ends_is_served_and_kept_alive(live_server: Callable[..., LiveServer]) -> None:
    """Only a stalled body is cut off: a chunked one that ends is served, with no `Connection: close`."""
    live = live_server(body_timeout_seconds=1)
    body = json.dumps(SPEECH).encode()
    head = _request("POST", "/v1/audio/speech", "application/json", "Transfer-Encoding: chunked")
    frames = b"".join(f"{len(b):x}\r\n".encode() + b + b"\r\n" for b in (body[:10], body[10:])) + b"0\r\n\r\n"
    with _open(live, head + frames) as sock:
        data = b""
        while b"\r\n0\r\n\r\n" not in data:  # the chunked audio response, to its end
            chunk = sock.recv(65536)
            assert chunk, "the server closed a healthy connection"
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and b"connection: close" not in data.lower().split(b"\r\n\r\n")[0]


# -- voice names ------------------------------------------------------------------------------------


def _clip() -> bytes:
    t = np.arange(48000) / 24000
    buf = io.BytesIO()
    sf.write(buf, 0.3 * np.sin(2 * np.pi * 220 * t).astype(np.float32), 24000, format="WAV")
    return buf.getvalue()


CLIP = _clip()


@pytest.fixture
def studio(app_factory: Callable[..., InProcess]) -> InProcess:
    return app_factory(registry=cloning_registry())


def _create(client: openai.OpenAI, name: str) -> Any:
    return client.audio.voices.create(
        name=name,
        audio_sample=("me.wav", CLIP, "audio/wav"),
        consent="cons_local",
        extra_body={"transcript": "A tone."},  # no Whisper needed
    )


HIDDEN = {
    "\u202e": "bidirectional",  # RIGHT-TO-LEFT OVERRIDE: "Rose\u202eevil" shows as "Roselive"
    "\u202a": "bidirectional",
    "\u2066": "bidirectional",  # the isolates
    "\u2069": "bidirectional",
    "\u200f": "bidirectional",  # RIGHT-TO-LEFT MARK
    "\u200b": "zero-width",
    "\u200c": "zero-width",
    "\u200d": "zero-width",
    "\u2060": "zero-width",
    "\ufeff": "zero-width",
    "\x00": "control",
    "\x1b": "control",
    "\n": "control",
    "\x85": "control",
    "\u00ad": "formatting",  # SOFT HYPHEN (Cf)
    "\U000e0041": "formatting",  # TAG LATIN CAPITAL LETTER A (Cf)
    "\u2028": "line separator",
    "\u2029": "paragraph separator",
}


@pytest.mark.parametrize("char", list(HIDDEN), ids=[f"U+{ord(c):04X}" for c in HIDDEN])
def test_names_with_hidden_characters_are_400(studio: InProcess, char: str) -> None:
    client = studio.sdk()
    with pytest.raises(openai.BadRequestError) as refused:
        _create(client, f"Rose{char}Marie")
    assert refused.value.param == "name" and refused.value.code == "invalid_value"
    message = refused.value.message
    assert f"U+{ord(char):04X}" in message and HIDDEN[char] in message and "at character 5" in message
    assert not [v for v in studio.get("/v1/audio/voices?all=true").json()["voices"] if "Rose" in v["name"]]

    mine = _create(client, "Rose").id
    renamed = studio.patch(f"/v1/audio/voices/{mine}", json={"name": f"{char}Rose"})
    assert renamed.status_code == 400
    assert f"U+{ord(char):04X}" in assert_envelope(renamed.json(), "invalid_value", "name")["message"]
    assert studio.get(f"/v1/audio/voices/{mine}").json()["name"] == "Rose"


def test_unpaired_surrogates_are_refused_by_the_library(tmp_path: Path) -> None:
    """The one door no HTTP client can use (UTF-8 cannot carry them); the UI and MCP call the library."""
    for name in ("Rose\ud800", "\udfffRose"):
        with pytest.raises(InvalidRequest) as refused:
            clean_name(name)
        assert refused.value.param == "name" and "unpaired surrogate" in refused.value.message
    library = VoiceLibrary(tmp_path)
    with pytest.raises(InvalidRequest) as refused:
        library.add("Evil\u202eeno", CLIP, "me.wav", transcript="A tone.")
    assert refused.value.param == "name"
    assert library.all() == []


def test_decomposed_names_are_stored_nfc_and_found_either_way(studio: InProcess) -> None:
    client = studio.sdk()
    created = _create(client, "Cafe\u0301 Noir")  # e + COMBINING ACUTE ACCENT
    assert created.name == "Caf\u00e9 Noir"
    index = json.loads((Path(studio.app.state.settings.data_dir) / "voices" / "index.json").read_text("utf-8"))
    assert [v["name"] for v in index["voices"]] == ["Caf\u00e9 Noir"]
    for ref in ("Caf\u00e9 Noir", "Cafe\u0301 Noir", "CAF\u00c9 NOIR"):
        audio = client.audio.speech.create(model="echo-clone", voice=ref, input="Hi.", response_format="wav")
        assert audio.content[:4] == b"RIFF"
    with studio.app.state.manager.lease("echo-clone") as lease:
        assert {r.voice_id for r in lease.engine.seen} == {created.id}
    with pytest.raises(openai.BadRequestError) as duplicate:
        _create(client, "CAFE\u0301 NOIR")  # the same name, composed differently and in capitals
    assert duplicate.value.code == "duplicate_name"
    renamed = studio.patch(f"/v1/audio/voices/{created.id}", json={"name": "Nai\u0308ve"}).json()
    assert renamed["name"] == "Na\u00efve" and unicodedata.is_normalized("NFC", renamed["name"])


@pytest.mark.parametrize(
    "name",
    ["山田 花子", "ليلى", "נועה", "प्रिया", "Ελένη", "Zoë 🎙️", "Dvořák & Søn (take 2)"],
    ids=["japanese", "arabic", "hebrew", "devanagari", "greek", "emoji", "latin"],
)
def test_names_in_any_script_still_work(studio: InProcess, name: str) -> None:
    client = studio.sdk()
    created = _create(client, name)
    assert created.name == name
    audio = client.audio.speech.create(model="echo-clone", voice=name, input="Hi.", response_format="wav")
    assert audio.content[:4] == b"RIFF"


def test_names_stored_before_the_rule_still_load(app_factory: Callable[..., InProcess]) -> None:
    """A library written before the rule (a name with a bidi override) opens, lists, speaks and can be edited;
    only a new name is checked."""
    first = app_factory(registry=cloning_registry())
    mine = _create(first.sdk(), "Old").id
    first.stop()
    index_path = Path(first.app.state.settings.data_dir) / "voices" / "index.json"
    index = json.loads(index_path.read_text("utf-8"))
    legacy = "Old\u202ename"
    index["voices"][0]["name"] = legacy
    index_path.write_text(json.dumps(index), "utf-8")

    second = app_factory(registry=cloning_registry())
    assert second.get(f"/v1/audio/voices/{mine}").json()["name"] == legacy
    client = second.sdk()
    assert client.audio.speech.create(model="echo-clone", voice=mine, input="Hi.", response_format="wav").content
    kept = second.patch(f"/v1/audio/voices/{mine}", json={"name": legacy, "transcript": "New words."})
    assert kept.status_code == 200 and kept.json()["transcript"] == "New words."  # the UI sends the name back
    refused = second.patch(f"/v1/audio/voices/{mine}", json={"name": legacy + "!"})
    assert_envelope(refused.json(), "invalid_value", "name")
    fixed = second.patch(f"/v1/audio/voices/{mine}", json={"name": "Old name"})
    assert fixed.json()["name"] == "Old name"
