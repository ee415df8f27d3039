"""POST /v1/audio/transcriptions through the SDK: every response format, streaming and errors."""

from __future__ import annotations

import re

import openai
import pytest
from openai import OpenAI

from tests.conftest import PARAGRAPH, InProcess
from tests.test_errors import assert_envelope


@pytest.fixture(scope="module")
def speech_mp3(app_client: InProcess) -> bytes:
    return app_client.sdk().audio.speech.create(model="tts-1", voice="alloy", input=PARAGRAPH).content


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_json_text_and_subtitles(sdk: OpenAI, speech_mp3: bytes) -> None:
    result = sdk.audio.transcriptions.create(model="whisper-1", file=("a.mp3", speech_mp3))
    assert {"quick", "brown", "fox", "bread", "plants"} <= _words(result.text)
    assert [language.code for language in result.languages or []] == ["en"]
    text = sdk.audio.transcriptions.create(model="whisper-1", file=("a.mp3", speech_mp3), response_format="text")
    assert isinstance(text, str) and "fox" in text.lower()
    srt = sdk.audio.transcriptions.create(model="whisper-1", file=("a.mp3", speech_mp3), response_format="srt")
    assert re.search(r"^1\n00:00:00,000 --> 00:00:\d\d,\d{3}\n", srt)
    vtt = sdk.audio.transcriptions.create(model="whisper-1", file=("a.mp3", speech_mp3), response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> ")


def test_verbose_json_with_words(sdk: OpenAI, speech_mp3: bytes) -> None:
    result = sdk.audio.transcriptions.create(
        model="whisper-1", file=("a.mp3", speech_mp3), response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )  # fmt: skip
    assert result.language == "english" and result.duration > 5
    assert result.to_dict()["languages"] == [{"code": "en"}]
    assert result.segments and result.segments[0].end > result.segments[0].start
    assert result.words and {"quick", "fox"} <= {w.word.lower().strip(".,") for w in result.words}


def test_streaming_events(sdk: OpenAI, speech_mp3: bytes) -> None:
    stream = sdk.audio.transcriptions.create(model="gpt-4o-mini-transcribe", file=("a.mp3", speech_mp3), stream=True)
    events = list(stream)
    assert events[-1].type == "transcript.text.done" and "fox" in events[-1].text.lower()
    assert [language.code for language in events[-1].languages or []] == ["en"]
    assert all(e.type == "transcript.text.delta" for e in events[:-1]) and len(events) >= 2


def test_transcription_errors(sdk: OpenAI, speech_mp3: bytes) -> None:
    with pytest.raises(openai.NotFoundError) as missing_model:
        sdk.audio.transcriptions.create(model="nope-1", file=("a.mp3", speech_mp3))
    assert missing_model.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as not_audio:  # OpenAI answers 400 here, not 415
        sdk.audio.transcriptions.create(model="whisper-1", file=("a.txt", b"plain text, not audio" * 10))
    assert_envelope(not_audio.value.response.json(), "invalid_file_format", "file")
    with pytest.raises(openai.BadRequestError) as bad_format:
        sdk.audio.transcriptions.create(model="whisper-1", file=("a.mp3", speech_mp3), response_format="xml")  # type: ignore[arg-type]
    assert bad_format.value.param == "response_format"
    with pytest.raises(openai.BadRequestError) as language:
        sdk.audio.transcriptions.create(model="whisper-1", file=("a.mp3", speech_mp3), language="de")
    assert language.value.param == "language"
