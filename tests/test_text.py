"""Normalisation and chunking."""

from __future__ import annotations

from tts_studio.text import chunk_text, normalize, split_sentences


def test_normalize_strips_markdown_urls_and_controls() -> None:
    text = "# Title\n\nSome **bold** and `code`, a [link](http://x.org/a) and https://example.com/page.\x07"
    assert normalize(text) == "Title\n\nSome bold and code, a link and link."


def test_sentences_respect_abbreviations_and_initials() -> None:
    text = "Dr. Smith met J. K. Rowling at noon. They talked! Did they agree? Yes."
    assert split_sentences(text) == [
        "Dr. Smith met J. K. Rowling at noon.",
        "They talked!",
        "Did they agree?",
        "Yes.",
    ]


def test_first_chunk_is_one_sentence_rest_packed() -> None:
    text = "First sentence here. " + "Another one follows. " * 30
    chunks = chunk_text(text, max_chars=120)
    assert chunks[0] == "First sentence here."
    assert all(len(c) <= 120 for c in chunks)
    assert " ".join(chunks).split() == normalize(text).split()


def test_long_sentence_splits_at_clauses_then_words() -> None:
    text = "word " * 100 + "end, and then " + "more " * 100
    chunks = chunk_text(text, max_chars=150)
    assert all(len(c) <= 150 for c in chunks)
    assert " ".join(chunks).split() == normalize(text).split()


def test_cjk_punctuation_ends_sentences() -> None:
    assert split_sentences("你好。今天天气很好！") == ["你好。", "今天天气很好！"]


def test_empty_text_has_no_chunks() -> None:
    assert chunk_text("  \n\n ") == []


def test_a_long_first_sentence_is_cut_short_for_fast_first_audio() -> None:
    text = "This opening sentence rambles on, and on, with clause after clause, " * 4 + "until it ends. Next."
    chunks = chunk_text(text, max_chars=300, first_chars=80)
    assert len(chunks[0]) <= 80 and all(len(c) <= 300 for c in chunks)
    assert " ".join(chunks).split() == normalize(text).split()  # nothing lost or reordered


def test_long_numbers_are_read_digit_by_digit() -> None:
    assert normalize("I owe 1234567890123456789 dollars.") == "I owe " + " ".join("1234567890123456789") + " dollars."
    assert normalize("Call 555,000,123 now.") == "Call 555,000,123 now."  # short numbers stay numbers
