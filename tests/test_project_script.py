"""Scripts, dictionaries, imports and take checks, without a server."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from tts_studio.errors import InvalidRequest
from tts_studio.projects.dictionary import Entry, apply
from tts_studio.projects.importing import script_from_file
from tts_studio.projects.script import MAX_LINE_CHARS, ScriptError, parse, speakers, strip_tags, tags_in
from tts_studio.projects.verify import RATE, failed, trim, word_error_rate
from tts_studio.text import split_long


def test_chapters_speakers_and_pauses() -> None:
    chapters = parse(
        "Intro line.\n# One\nAlice: Hi. [pause 500ms] Bye.\n[pause 2s]\n## Sub heading\n# Two\n- Bob: Yes."
    )
    assert [c.title for c in chapters] == ["", "One", "Two"]
    one = chapters[1].lines
    assert [(line.id, line.speaker, line.text) for line in one] == [
        ("c2-l1", "Alice", "Hi."), ("c2-l2", "Alice", "Bye."), ("c2-l3", "Narrator", "Sub heading")]  # fmt: skip
    assert one[0].pause_after == 0.5 and one[1].pause_after == 2.0
    assert chapters[2].lines[0].speaker == "Bob"
    assert speakers(chapters) == ["Narrator", "Alice", "Bob"]


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
