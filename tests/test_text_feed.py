"""TextFeed: an LLM's deltas become engine chunks as soon as each sentence is complete (the first sooner)."""

from __future__ import annotations

import threading

import pytest

from tts_studio.services.text_feed import FeedCancelled, TextFeed


def _chunks_now(feed: TextFeed) -> list[str]:
    """The chunks ready at this moment (without waiting for more text)."""
    return [next(iter(feed)) for _ in range(feed.ready)]


def test_a_sentence_is_ready_once_it_ends() -> None:
    feed = TextFeed()
    for delta in ["Hello", " there", ".", " How"]:
        feed.write(delta)
    assert _chunks_now(feed) == ["Hello there."]
    for delta in [" are", " you?", " Fine"]:
        feed.write(delta)
    assert _chunks_now(feed) == ["How are you?"]
    feed.end()
    assert list(feed) == ["Fine"]
    assert feed.taken == ["Hello there.", "How are you?", "Fine"]
    assert feed.text == "Hello there. How are you? Fine"


def test_a_full_stop_waits_for_what_follows() -> None:
    feed = TextFeed()
    feed.write("Dr.")
    feed.write(" Smith is here")
    assert feed.ready == 0  # "Dr." did not end a sentence
    feed.write(".\n")
    assert _chunks_now(feed) == ["Dr. Smith is here."]


def test_words_split_across_deltas_stay_whole() -> None:
    feed = TextFeed()
    for delta in ["The riv", "er runs", " fast. An", "d then"]:
        feed.write(delta)
    feed.end()
    assert list(feed) == ["The river runs fast.", "And then"]


def test_a_long_first_sentence_is_spoken_early_at_a_clause() -> None:
    feed = TextFeed(first_chars=40)
    feed.write("When the morning came over the hills, the birds began to sing, ")
    first = _chunks_now(feed)
    assert first and len(first[0]) <= 40 and first[0].endswith(",")
    feed.write("and the river ran on without an end in sight")
    assert feed.ready == 0  # only the first chunk is cut early
    feed.end()
    list(feed)
    assert " ".join(feed.taken) == feed.text.strip()  # every word spoken once, in order


def test_markup_is_normalised_like_any_input() -> None:
    feed = TextFeed()
    feed.write("**Bold** words and a [link](http://example.com). ")
    assert _chunks_now(feed) == ["Bold words and a link."]


def test_failure_reaches_the_reader() -> None:
    feed = TextFeed()
    feed.fail(LookupError("upstream down"))
    with pytest.raises(LookupError):
        next(iter(feed))


def test_cancel_wakes_a_waiting_reader() -> None:
    feed = TextFeed()
    waiting, outcome = threading.Event(), []

    def read() -> None:
        waiting.set()
        try:
            next(iter(feed))
        except FeedCancelled:
            outcome.append("cancelled")

    reader = threading.Thread(target=read)
    reader.start()
    assert waiting.wait(10)
    feed.cancel()
    reader.join(10)
    assert outcome == ["cancelled"]


def test_nothing_written_ends_empty() -> None:
    feed = TextFeed()
    feed.end()
    assert list(feed) == []


def test_only_the_first_chunk_of_a_reply_is_cut_short() -> None:
    feed = TextFeed(max_chars=300, first_chars=60)
    second = "Then the travellers walked for many hours across the quiet valley until the evening came."
    feed.write("Hello there. " + second + " ")
    feed.end()
    chunks = list(feed)
    assert chunks[0] == "Hello there."
    assert second in chunks  # a later sentence longer than first_chars stays whole (prosody)
