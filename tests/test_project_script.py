"""Scripts, dictionaries, imports, take checks and the project store, without a server."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tts_studio.errors import InvalidRequest
from tts_studio.projects.dictionary import Entry, apply
from tts_studio.projects.importing import script_from_file
from tts_studio.projects.script import MAX_LINE_CHARS, ScriptError, parse, speakers, strip_tags, tags_in
from tts_studio.projects.store import ProjectData, ProjectStore
from tts_studio.projects.verify import RATE, failed, trim, word_error_rate
from tts_studio.text import split_long


def test_chapters_speakers_and_pauses() -> None:
    chapters = parse(
        "Intro line.\n# One\nAlice: Hi. [pause 500ms] Bye.\n[pause 2s]\n## Sub heading\n# Two\n- Bob: Yes."
    )
    assert [c.title for c in chapters] == ["", "One", "Two"]
    one = chapters[1].lines
    assert [(line.id, line.speaker, line.text) for line in one] == [
        ("c2-l1", "Alice", "Hi. [pause 500ms] Bye."),
        ("c2-l2", "Narrator", "Sub heading"),
    ]
    assert [(part.text, part.pause_after) for part in one[0].parts] == [("Hi.", 0.5), ("Bye.", 0.0)]
    assert one[0].pause_after == 2.0  # a pause on its own line: silence after the line, as before
    assert chapters[2].lines[0].speaker == "Bob"
    assert speakers(chapters) == ["Narrator", "Alice", "Bob"]


def test_a_pause_inside_a_line_keeps_it_one_line() -> None:
    (chapter,) = parse("Bob: Hello there. [pause 1.5s] How are you?\nBob: Fine. [pause 300ms]")
    first, second = chapter.lines
    assert (first.id, first.speaker, first.text) == ("c1-l1", "Bob", "Hello there. [pause 1.5s] How are you?")
    assert [(part.text, part.pause_after) for part in first.parts] == [("Hello there.", 1.5), ("How are you?", 0.0)]
    assert first.pause_after == 0.0 and first.plain == "Hello there. How are you?"
    assert (second.text, second.pause_after, len(second.parts)) == ("Fine.", 0.3, 1)  # a pause at the end: after


def test_a_part_without_words_joins_its_neighbour() -> None:
    (line,) = parse("Wait [pause 1s] [laugh] [pause 500ms] then go. [pause 2s] .")[0].lines
    assert [(part.text, part.pause_after) for part in line.parts] == [("Wait [laugh]", 1.5), ("then go. .", 0.0)]
    assert line.pause_after == 2.0  # the last pause ends the line's take: silence after it


def test_long_paragraphs_with_pauses_split_at_sentences_and_keep_them() -> None:
    sentence = "The river ran past the mill and on towards the sea while the town slept. "
    text = (sentence * 10 + "[pause 1s] ") * 4
    lines = parse(text)[0].lines
    assert len(lines) > 1 and all(len(line.text) <= MAX_LINE_CHARS for line in lines)
    written = " ".join(f"{line.text} [pause 1s]" if line.pause_after else line.text for line in lines)
    assert written == " ".join(text.split())
    inner = sum(part.pause_after for line in lines for part in line.parts)
    assert inner + sum(line.pause_after for line in lines) == 4.0


def test_a_leading_pause_and_urls_are_not_speakers() -> None:
    chapters = parse("# A\n[pause 1s]\nhttps: not a speaker line\nNote: read this.")
    assert chapters[0].lead_pause == 1.0
    assert [line.speaker for line in chapters[0].lines] == ["Narrator", "Narrator"]


@pytest.mark.parametrize("script", ["", "   \n", "# Title only\n", "[pause 1s]", "[laugh]", "Too long [pause 31s]."])
def test_unspeakable_scripts(script: str) -> None:
    with pytest.raises(ScriptError):
        parse(script)


def test_tags_pass_or_are_stripped() -> None:
    text = "Well [laugh] that was [clears throat] fun."
    assert tags_in(text) == ["laugh", "clears throat"]
    assert strip_tags(text) == "Well that was fun."
    assert strip_tags(text, keep=("laugh",)) == "Well [laugh] that was fun."


def test_long_paragraphs_become_several_lines_and_tags_stay_whole() -> None:
    sentence = "The river ran past the mill and on towards the sea [laugh] while the town slept. "
    chapters = parse(sentence * 40)
    lines = chapters[0].lines
    assert len(lines) > 1 and all(len(line.text) <= MAX_LINE_CHARS for line in lines)
    assert " ".join(line.text for line in lines) == (sentence * 40).strip()
    for cut in range(20, 60):
        for part in split_long("word " * 6 + "[clears throat] " + "word " * 6, cut):
            assert part.count("[") == part.count("]")


def test_dictionary_whole_words_case_and_voice() -> None:
    entries = [Entry(term="GUI", say="gooey", match_case=True), Entry(term="nginx", say="engine x"),
               Entry(term="Dr", say="Doctor", voice="nova")]  # fmt: skip
    assert apply("The GUI, a gui, guide and NGINX.", entries) == "The gooey, a gui, guide and engine x."
    assert apply("Dr Who", entries, voice="nova") == "Doctor Who"
    assert apply("Dr Who", entries, voice="echo") == "Dr Who"


def test_word_error_rate_and_the_retry_rule() -> None:
    assert word_error_rate("Hello, world!", "hello world") == 0.0
    assert word_error_rate("one two three four", "one two tree four") == 0.25
    assert not failed("one two three four", 0.25)  # one wrong word is not a retry
    assert failed("one two three four five six seven eight", 0.5)
    assert not failed("hi", 1.0)  # a single word: never more than one wrong


def test_trim_cuts_silence_and_the_tail_after_the_last_word() -> None:
    silence, tone = np.zeros(RATE, np.float32), 0.3 * np.ones(RATE, np.float32)
    samples = np.concatenate([silence, tone, tone, silence])  # speech 1-3 s; Whisper heard words in 1-2 s
    words = [{"word": "hello", "start": 1.0, "end": 1.9}]
    trimmed, moved = trim(samples, words)
    assert len(trimmed) / RATE == pytest.approx(0.08 + 0.9 + 0.25, abs=0.02)
    assert moved[0]["start"] == pytest.approx(0.08, abs=0.01)


def _epub() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as book:
        book.writestr("mimetype", "application/epub+zip")
        book.writestr("META-INF/container.xml", '<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
                      '<rootfiles><rootfile full-path="OEBPS/book.opf"/></rootfiles></container>')  # fmt: skip
        book.writestr("OEBPS/book.opf", '<package xmlns="http://www.idpf.org/2007/opf"><manifest>'
                      '<item id="a" href="one.xhtml"/><item id="b" href="text/two.xhtml"/></manifest>'
                      '<spine><itemref idref="a"/><itemref idref="b"/></spine></package>')  # fmt: skip
        book.writestr("OEBPS/one.xhtml", "<html><head><title>x</title><style>p{}</style></head><body>"
                      "<h1>First</h1><p>It was a <b>bright</b> day.</p><p>Birds sang.</p></body></html>")  # fmt: skip
        book.writestr("OEBPS/text/two.xhtml", "<html><body><h2>Second</h2><p>The end &amp; more.</p></body></html>")
    return out.getvalue()


def test_imports() -> None:
    script = script_from_file("book.epub", _epub())
    assert script.splitlines() == ["# First", "It was a bright day.", "Birds sang.", "", "# Second", "The end & more."]
    assert [c.title for c in parse(script)] == ["First", "Second"]
    assert script_from_file("notes.md", "\ufeff# Hi\nThere.".encode()) == "# Hi\nThere."
    for name, data in (("book.epub", b"not a zip"), ("song.mp3", b"ID3")):
        with pytest.raises(InvalidRequest):
            script_from_file(name, data)


OLD_PROJECT = {  # a project.json as the store has written it from the start (no `last_render` before a render)
    "id": "proj_0123456789abcdef",
    "object": "project",
    "created_at": 1700000000,
    "updated_at": 1700000100,
    "status": "done",
    "error": None,
    "name": "Old one",
    "script": "# One\nAlice: Hi. [pause 500ms] Bye.\n",
    "voices": {"Narrator": "alloy", "Alice": "nova"},
    "model": "tts-1",
    "dictionary": [{"term": "GUI", "say": "gooey", "match_case": True, "voice": None}],
}


def test_a_project_json_in_the_old_shape_loads_typed_and_saves_the_same_shape(tmp_path: Path) -> None:
    folder = tmp_path / "proj_0123456789abcdef"
    folder.mkdir()
    (folder / "project.json").write_text(json.dumps(OLD_PROJECT), encoding="utf-8")
    store = ProjectStore(tmp_path)
    project = store.get("proj_0123456789abcdef")
    data = project.data
    assert isinstance(data, ProjectData)
    assert (data.name, data.status, data.created_at) == ("Old one", "done", 1700000000)
    assert data.error is None and data.last_render is None
    assert data.dictionary == [Entry(term="GUI", say="gooey", match_case=True)]
    assert project.voice_for("Alice") == "nova" and project.voice_for("Bob") == "alloy"
    store.update(project.id, status="rendering")
    saved = json.loads((folder / "project.json").read_text(encoding="utf-8"))
    assert saved == {**OLD_PROJECT, "status": "rendering", "updated_at": saved["updated_at"], "last_render": None}
    assert store.get(project.id).data.status == "rendering"


def test_an_older_project_json_without_a_dictionary_loads(tmp_path: Path) -> None:
    folder = tmp_path / "proj_0123456789abcdef"
    folder.mkdir()
    older = {key: value for key, value in OLD_PROJECT.items() if key != "dictionary"}
    (folder / "project.json").write_text(json.dumps(older), encoding="utf-8")
    assert ProjectStore(tmp_path).get("proj_0123456789abcdef").data.dictionary == []
