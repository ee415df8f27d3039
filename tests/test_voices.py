"""The voice library over HTTP: upload, list, speak, rename, delete, rejections, mapping, cloning inputs."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
import soundfile as sf
from hibari import Hibari

from tests.cloning import cloning_registry
from tests.conftest import InProcess, wait_until_idle
from tests.test_errors import assert_envelope

CLIP_TEXT = "Please remember to water the plants before you leave for work tomorrow morning."


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return Hibari(threads=1)(CLIP_TEXT, seed=0)


def encode(samples: np.ndarray, fmt: str, rate: int = 24000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt)
    return buf.getvalue()


@pytest.fixture
def studio(app_factory: Callable[..., InProcess]) -> InProcess:
    return app_factory(registry=cloning_registry())


def upload(
    studio: InProcess, data: bytes, name: str = "My Voice", filename: str = "me.wav", **fields: str
) -> httpx.Response:
    return studio.post(
        "/v1/audio/voices",
        data={"name": name, **fields},
        files={"audio_sample": (filename, data, "application/octet-stream")},
    )


def library_state(studio: InProcess) -> tuple[str, list[str]]:
    root = Path(studio.app.state.settings.data_dir) / "voices"
    index = (root / "index.json").read_text() if (root / "index.json").exists() else ""
    return index, sorted(p.name for p in root.iterdir())


def test_open_webui_shape_and_bundled_voices(app_client: InProcess) -> None:
    body = app_client.get("/v1/audio/voices?all=true").json()
    assert isinstance(body["voices"], list)
    assert all(isinstance(v["id"], str) and isinstance(v["name"], str) for v in body["voices"])
    kinds = {v["id"]: v["kind"] for v in body["voices"]}
    assert kinds["bundled_heart"] == "bundled" and kinds["heart"] == "builtin" and kinds["alloy"] == "openai"
    alloy = next(v for v in body["voices"] if v["id"] == "alloy")
    assert alloy["maps_to"] == ["bundled_heart", "heart"] and alloy["engines"] == ["hibari"]
    assert app_client.get("/v1/voices?all=true").json() == body  # the VoxCPM clients' alias
    preview = app_client.get(next(v for v in body["voices"] if v["id"] == "bundled_dusk")["preview_url"])
    assert preview.status_code == 200 and preview.content[:4] == b"fLaC"


def test_upload_list_speak_rename_delete(studio: InProcess, clip: np.ndarray) -> None:
    client = studio.sdk()
    created = client.audio.voices.create(
        name="Grandma Rose", audio_sample=("rose.wav", encode(clip, "WAV"), "audio/wav"), consent="cons_local"
    )
    assert created.object == "audio.voice" and created.id.startswith("voice_") and created.name == "Grandma Rose"
    entry = studio.get(f"/v1/audio/voices/{created.id}").json()
    assert entry["consent"] is True and entry["engines"] == ["echo-clone"]
    assert entry["transcript_source"] == "auto" and "plants" in entry["transcript"].lower()
    assert created.id in [v["id"] for v in studio.get("/v1/audio/voices").json()["voices"]]

    for voice in (created.id, {"id": created.id}, "grandma rose"):  # id, object and unique name
        audio = client.audio.speech.create(model="echo-clone", voice=voice, input="Hi.", response_format="wav")  # type: ignore[arg-type]
        assert audio.content[:4] == b"RIFF"
    engine = studio.app.state.manager
    with engine.lease("echo-clone") as lease:
        assert {r.voice_id for r in lease.engine.seen} == {created.id}

    with pytest.raises(openai.BadRequestError) as info:  # the embedded engine cannot clone
        client.audio.speech.create(model="tts-1", voice=created.id, input="Hi.")
    assert info.value.code == "voice_not_supported" and "echo-clone" in info.value.message

    renamed = studio.patch(
        f"/v1/audio/voices/{created.id}", json={"name": "Rose", "transcript": "Edited words."}
    ).json()
    assert renamed["name"] == "Rose" and renamed["transcript_source"] == "user"
    original = studio.get(f"/v1/audio/voices/{created.id}/audio", params={"original": "true"})
    assert original.content == encode(clip, "WAV")
    reference = studio.get(f"/v1/audio/voices/{created.id}/audio")
    assert reference.headers["content-type"] == "audio/wav" and sf.info(io.BytesIO(reference.content)).channels == 1

    deleted = client.audio.voices.delete(created.id)
    assert deleted.deleted and deleted.id == created.id and deleted.object == "audio.voice.deleted"
    assert studio.get(f"/v1/audio/voices/{created.id}").status_code == 404
    with pytest.raises(openai.NotFoundError):
        client.audio.voices.delete(created.id)
    assert library_state(studio)[1] == ["index.json"]


@pytest.mark.parametrize("fmt", ["MP3", "FLAC", "OGG"])
def test_common_formats_are_accepted(studio: InProcess, clip: np.ndarray, fmt: str) -> None:
    response = upload(studio, encode(clip, fmt), name=f"clip {fmt}", filename=f"c.{fmt.lower()}",
                      transcript="Given.")  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["transcript_source"] == "user"
    assert response.json()["duration"] == pytest.approx(len(clip) / 24000, abs=0.1)


def _cases(clip: np.ndarray) -> list[tuple[str, bytes, str, int, str]]:
    mp3 = encode(clip, "MP3")
    long = np.tile(clip, int(125 * 24000 / len(clip)) + 1)
    return [
        ("not audio", b"this is a text file, not audio at all " * 20, "x.wav", 415, "invalid_audio"),
        ("zero bytes", b"", "x.wav", 400, "empty_file"),
        ("truncated mp3", mp3[: len(mp3) // 2], "x.mp3", 400, "invalid_audio"),
        ("truncated wav", encode(clip, "WAV")[:30000], "x.wav", 400, "invalid_audio"),
        ("header only", mp3[:200], "x.mp3", 415, "invalid_audio"),
        ("too short", encode(clip[:4000], "WAV"), "x.wav", 400, "audio_too_short"),
        ("over length", encode(long, "FLAC"), "x.flac", 400, "audio_too_long"),
        ("silence", encode(np.zeros(48000, np.float32), "WAV"), "x.wav", 400, "audio_silent"),
    ]


@pytest.mark.parametrize("case", range(8))
def test_hostile_uploads_are_rejected_and_change_nothing(studio: InProcess, clip: np.ndarray, case: int) -> None:
    label, data, filename, status, code = _cases(clip)[case]
    before = library_state(studio)
    response = upload(studio, data, name=label, filename=filename)
    assert response.status_code == status, (label, response.text)
    assert_envelope(response.json(), code)
    assert library_state(studio) == before


def test_oversize_upload_is_413(app_factory: Callable[..., InProcess], clip: np.ndarray) -> None:
    studio = app_factory(voice_max_bytes=50_000)
    before = library_state(studio)
    response = upload(studio, encode(clip, "WAV"))
    assert response.status_code == 413
    assert_envelope(response.json(), "request_too_large")
    assert library_state(studio) == before


@pytest.mark.parametrize("name", ["../../etc/passwd", "/abs/path", "C:\\Windows\\system32", "CON", "NUL.txt",
                                  "ünïcødé 声音 🎤", "..", "a/b\\c"])  # fmt: skip
def test_names_are_display_text_only(studio: InProcess, clip: np.ndarray, name: str) -> None:
    response = upload(studio, encode(clip, "WAV"), name=name, filename=name, transcript="x")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == name and body["id"].startswith("voice_")
    root = Path(studio.app.state.settings.data_dir) / "voices"
    original, reference = sorted(p.name for p in (root / body["id"]).iterdir())
    assert reference == "reference.wav" and re.fullmatch(r"original\.[a-z0-9]{1,5}", original)
    assert all(p.resolve().is_relative_to(root.resolve()) for p in root.rglob("*"))


def test_duplicate_and_empty_names(studio: InProcess, clip: np.ndarray) -> None:
    assert upload(studio, encode(clip, "WAV"), name="Twin", transcript="x").status_code == 200
    before = library_state(studio)
    reserved = (("Heart", "reserved_name"), ("Alloy", "reserved_name"), ("nova", "reserved_name"))
    for name, code in (("twin", "duplicate_name"), ("  ", "empty_string"), ("Dusk", "duplicate_name"), *reserved):
        response = upload(studio, encode(clip, "WAV"), name=name, transcript="x")
        assert response.status_code == 400
        assert_envelope(response.json(), code)
    missing = studio.post("/v1/audio/voices", data={"name": "no file"})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "audio_sample"
    wrong = studio.post("/v1/audio/voices", json={"name": "json"})
    assert wrong.status_code == 415
    assert library_state(studio) == before


def test_unknown_ids_are_404(studio: InProcess) -> None:
    for method, path in (("GET", "voice_nope"), ("PATCH", "voice_nope"), ("DELETE", "voice_nope"),
                         ("GET", "voice_nope/audio")):  # fmt: skip
        response = studio.request(method, f"/v1/audio/voices/{path}", json={"name": "x"})
        assert response.status_code == 404
        assert_envelope(response.json(), "voice_not_found")


def test_bundled_voices_are_read_only(studio: InProcess) -> None:
    for response in (studio.delete("/v1/audio/voices/bundled_heart"),
                     studio.patch("/v1/audio/voices/bundled_heart", json={"name": "x"})):  # fmt: skip
        assert response.status_code == 400
        assert_envelope(response.json(), "voice_read_only")


def test_openai_name_maps_to_my_clone(studio: InProcess, clip: np.ndarray) -> None:
    mine = upload(studio, encode(clip, "WAV"), name="Mine", transcript="x").json()["id"]
    client = studio.sdk()
    mapped = studio.put("/v1/audio/voice_map/alloy", json={"voice": "Mine"}).json()
    assert mapped["maps_to"] == [mine] and mapped["mapping_source"] == "user"
    client.audio.speech.create(model="echo-clone", voice="alloy", input="Hi.", response_format="pcm")
    with studio.app.state.manager.lease("echo-clone") as lease:
        assert lease.engine.seen[-1].voice_id == mine
    # the embedded engine cannot speak the clone: `alloy` falls back to its default candidates there
    assert client.audio.speech.create(model="tts-1", voice="alloy", input="Hi.").content
    reset = studio.delete("/v1/audio/voice_map/alloy").json()
    assert reset["maps_to"] == ["bundled_heart", "heart"] and reset["mapping_source"] == "default"
    assert client.audio.speech.create(model="tts-1", voice="alloy", input="Hi.").content
    client.audio.speech.create(model="echo-clone", voice="alloy", input="Hi.", response_format="pcm")
    with studio.app.state.manager.lease("echo-clone") as lease:
        assert lease.engine.seen[-1].voice_id == "bundled_heart"
    studio.put("/v1/audio/voice_map/echo", json={"voice": mine})
    studio.delete(f"/v1/audio/voices/{mine}")
    assert studio.get("/v1/audio/voices/echo").json()["maps_to"] == ["bundled_dusk", "fenrir", "heart"]
    bad = studio.put("/v1/audio/voice_map/alloy", json={"voice": "nobody"})
    assert bad.status_code == 400
    assert studio.put("/v1/audio/voice_map/robot", json={"voice": "bundled_lark"}).status_code == 404


def test_mapping_survives_restart(app_factory: Callable[..., InProcess], clip: np.ndarray) -> None:
    first = app_factory(registry=cloning_registry())
    mine = upload(first, encode(clip, "WAV"), name="Keeper", transcript="x").json()["id"]
    first.put("/v1/audio/voice_map/nova", json={"voice": mine})
    first.stop()
    second = app_factory(registry=cloning_registry())
    assert second.get("/v1/audio/voices/nova").json()["maps_to"] == [mine]
    assert second.get(f"/v1/audio/voices/{mine}").json()["name"] == "Keeper"


def test_voice_b64_clones_per_request_and_leaves_no_files(studio: InProcess, clip: np.ndarray) -> None:
    client = studio.sdk()
    b64 = base64.b64encode(encode(clip, "WAV")).decode()
    audio = client.audio.speech.create(model="echo-clone", voice="alloy", input="Hi.", response_format="pcm",
                                       extra_body={"voice_b64": b64})  # fmt: skip
    assert len(audio.content) == 24000  # half a second of the reference, played back
    wait_until_idle(studio)
    tmp = Path(studio.app.state.settings.cache_dir) / "tmp"
    assert list(tmp.iterdir()) == []
    for bad, code in (
        ("@@notbase64@@", "invalid_value"),
        (base64.b64encode(b"text").decode(), "invalid_audio"),
    ):
        with pytest.raises(openai.APIStatusError) as info:
            client.audio.speech.create(model="echo-clone", voice="alloy", input="Hi.", extra_body={"voice_b64": bad})
        assert info.value.status_code in (400, 415) and info.value.code == code
    with pytest.raises(openai.BadRequestError) as no_clone:
        client.audio.speech.create(model="tts-1", voice="alloy", input="Hi.", extra_body={"voice_b64": b64})
    assert no_clone.value.code == "voice_not_supported"


def test_voice_url_is_off_by_default(studio: InProcess) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        studio.sdk().audio.speech.create(
            model="echo-clone",
            voice="alloy",
            input="Hi.",
            extra_body={"voice_url": "https://example.com/a.wav"},
        )
    assert info.value.code == "voice_url_disabled"


INTERNAL_URLS = [
    "http://127.0.0.1:9/a.wav",
    "http://localhost/a.wav",
    "http://10.1.2.3/a.wav",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/a.wav",
    "http://192.168.1.1/a.wav",
    "file:///etc/passwd",
    "ftp://example.com/a.wav",
]


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_voice_url_refuses_internal_addresses(app_factory: Callable[..., InProcess], url: str) -> None:
    studio = app_factory(registry=cloning_registry(), voice_url_enabled=True)
    with pytest.raises(openai.BadRequestError) as info:
        studio.sdk().audio.speech.create(model="echo-clone", voice="alloy", input="Hi.", extra_body={"voice_url": url})
    assert info.value.code in ("url_not_allowed", "invalid_url")
    assert info.value.param == "voice_url"


def test_transcript_language_and_consent_fields(studio: InProcess, clip: np.ndarray) -> None:
    body = upload(studio, encode(clip, "WAV"), name="Marie", language="fr", consent="false").json()
    assert body["language"] == "fr" and body["transcript"] == "" and body["consent"] is False
    index: dict[str, Any] = json.loads(library_state(studio)[0])
    assert [v["name"] for v in index["voices"]] == ["Marie"]
