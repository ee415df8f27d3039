"""Several processes on one data dir (ingress replicas): what one writes, the others read at once.

Two service instances on one folder stand for two processes: each keeps its own cached copy, and only the
files on disk connect them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.cloning import cloning_registry
from tests.conftest import InProcess
from tts_studio.errors import NotFound
from tts_studio.projects.dictionary import Entry, GlobalDictionary
from tts_studio.services.file_watch import WatchedJson, file_stamp
from tts_studio.services.library import VoiceLibrary, atomic_write_json
from tts_studio.services.voices import VoiceMap


def wav(seconds: float = 1.0) -> bytes:
    t = np.arange(int(seconds * 24000)) / 24000
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 24000, format="WAV")
    return buf.getvalue()


@pytest.fixture
def pair(tmp_path: Path) -> tuple[VoiceLibrary, VoiceLibrary]:
    root = tmp_path / "voices"
    return VoiceLibrary(root), VoiceLibrary(root)


def test_a_voice_added_through_one_is_read_by_the_other(pair: tuple[VoiceLibrary, VoiceLibrary]) -> None:
    a, b = pair
    assert b.all() == []  # b has read the (missing) index before a writes
    voice = a.add("Alpha", wav(), "alpha.wav", transcript="Hello there.")
    assert b.get(voice.id) == voice
    assert b.find("alpha") == voice
    assert b.all() == [voice]
    reference = b.reference(voice.id)
    assert reference.audio_path.is_file() and reference.content_hash == voice.content_hash
    assert b.audio_path(voice.id, original=True).read_bytes() == wav()


def test_a_deleted_voice_disappears_from_the_other(pair: tuple[VoiceLibrary, VoiceLibrary]) -> None:
    a, b = pair
    voice = a.add("Alpha", wav(), transcript="x")
    assert b.get(voice.id) is not None
    a.delete(voice.id)
    assert b.get(voice.id) is None and b.find("Alpha") is None and b.all() == []
    with pytest.raises(NotFound):
        b.reference(voice.id)


def test_a_rename_through_one_is_seen_by_the_other(pair: tuple[VoiceLibrary, VoiceLibrary]) -> None:
    a, b = pair
    voice = a.add("Alpha", wav(), transcript="x")
    assert b.require(voice.id).name == "Alpha"
    a.update(voice.id, name="Omega", transcript="New words.")  # same length: the inode tells the change
    seen = b.require(voice.id)
    assert (seen.name, seen.transcript) == ("Omega", "New words.")
    assert b.find("omega") == seen and b.find("Alpha") is None


def test_writes_start_from_the_freshest_index(pair: tuple[VoiceLibrary, VoiceLibrary]) -> None:
    """No lost update: b adds (and renames, and deletes) after a wrote, and a's voices are kept."""
    a, b = pair
    assert b.all() == []
    first = a.add("Alpha", wav(), transcript="x")
    second = b.add("Beta", wav(1.5), transcript="x")
    third = a.add("Gamma", wav(2.0), transcript="x")
    b.update(second.id, name="Bravo")
    a.delete(first.id)
    expected = [third.id, second.id]
    for library in (a, b, VoiceLibrary(a.root)):
        assert sorted(v.id for v in library.all()) == sorted(expected)
        assert library.require(second.id).name == "Bravo"


def test_a_name_taken_through_one_is_refused_by_the_other(pair: tuple[VoiceLibrary, VoiceLibrary]) -> None:
    a, b = pair
    b.all()
    a.add("Alpha", wav(), transcript="x")
    with pytest.raises(Exception, match="already exists"):
        b.add("ALPHA", wav(), transcript="x")


def test_a_missing_index_means_no_user_voices(pair: tuple[VoiceLibrary, VoiceLibrary]) -> None:
    a, b = pair
    a.add("Alpha", wav(), transcript="x")
    assert len(b.all()) == 1
    (a.root / "index.json").unlink()
    assert a.all() == [] and b.all() == []


def test_an_index_that_does_not_parse_keeps_the_last_copy(
    pair: tuple[VoiceLibrary, VoiceLibrary], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = pair
    voice = a.add("Alpha", wav(), transcript="x")
    assert b.all() == [voice]
    (a.root / "index.json").write_text('{"voices": [', encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="tts_studio.services.file_watch"):
        assert b.all() == [voice] and b.get(voice.id) == voice
    assert len([r for r in caplog.records if "could not be read" in r.getMessage()]) == 1
    other = a.add("Beta", wav(1.5), transcript="x")  # a writes its last good copy plus the new voice
    assert [v.id for v in b.all()] == [voice.id, other.id]


def test_own_writes_are_not_read_back(tmp_path: Path) -> None:
    """A write remembers the new file's stamp: the next read does not parse it again; another's write does."""
    path = tmp_path / "data.json"
    parsed: list[object] = []

    def parse(data: object) -> object:
        parsed.append(data)
        return data

    watched = WatchedJson(path, parse, dict)
    watched.written({"a": 1}, atomic_write_json(path, {"a": 1}))
    assert watched.stamp == file_stamp(path)
    assert watched.current() == {"a": 1} and parsed == []
    atomic_write_json(path, {"a": 2})  # someone else
    assert watched.current() == {"a": 2} and watched.current() == {"a": 2} and parsed == [{"a": 2}]
    path.write_text(json.dumps({"a": 333}), encoding="utf-8")  # an edit in place: same inode, new size
    assert watched.current() == {"a": 333}


def test_a_voice_map_set_through_one_is_seen_by_the_other(tmp_path: Path) -> None:
    a = VoiceMap(None, tmp_path / "voice_map.json", {})
    b = VoiceMap(None, tmp_path / "voice_map.json", {})
    assert b.get("alloy") == [] and b.source("alloy") == "default"
    a.set("alloy", ["voice_0123"])
    assert b.get("alloy") == ["voice_0123"] and b.source("alloy") == "user"
    b.set("echo", ["voice_4567"])  # from the freshest file: a's choice stays
    a.reset("echo")
    assert b.get("alloy") == ["voice_0123"] and b.get("echo") == [] and b.source("echo") == "default"


def test_a_dictionary_replaced_through_one_is_seen_by_the_other(tmp_path: Path) -> None:
    a = GlobalDictionary(tmp_path / "dictionary.json")
    b = GlobalDictionary(tmp_path / "dictionary.json")
    assert b.entries() == []
    a.replace([Entry(term="GUI", say="gooey", match_case=True)])
    assert b.entries() == [Entry(term="GUI", say="gooey", match_case=True)]
    a.replace([Entry(term="SQL", say="sequel")])
    assert b.entries() == [Entry(term="SQL", say="sequel")]
    b.entries()[0].say = "changed by a caller"
    assert b.entries()[0].say == "sequel"


def test_a_voice_uploaded_to_one_app_speaks_through_another(app_factory: Callable[..., InProcess]) -> None:
    """Two studios on one data dir: upload through the first, speak the voice at once through the second."""
    owner = app_factory(registry=cloning_registry())
    reader = app_factory(registry=cloning_registry())
    assert owner.app.state.settings.data_dir == reader.app.state.settings.data_dir
    assert reader.get("/v1/audio/voices").json()["voices"] is not None  # the reader has read its index
    created = owner.post(
        "/v1/audio/voices",
        data={"name": "Shared", "transcript": "Hello there.", "consent": "true"},
        files={"audio_sample": ("shared.wav", wav())},
    )
    assert created.status_code == 200, created.text
    voice_id = created.json()["id"]
    body = {"model": "echo-clone", "voice": voice_id, "input": "Hello from a replica.", "response_format": "wav"}
    spoken = reader.post("/v1/audio/speech", json=body)
    assert spoken.status_code == 200, spoken.text
    assert spoken.content[:4] == b"RIFF" and len(spoken.content) > 44
    assert voice_id in {v["id"] for v in reader.get("/v1/audio/voices").json()["voices"]}
