"""Any language in: the multilingual Whisper the user downloads, here a checkpoint built locally in faster-whisper's
format (tests/whisper_checkpoint.py: it always writes "bonjour le monde", and detection ranks French first) and
loaded by faster-whisper's real loader. Without it, another language is a 400 that says how to get it. Also the
current API's transcription fields (`prompt`, `keywords`, `languages`, `chunking_strategy`, the new model ids)
and `tts-studio download whisper` offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
from openai import OpenAI

from tests.conftest import InProcess, LiveServer, make_settings, start_in_process
from tests.doubles import Script, double_info, registry_with
from tests.test_errors import assert_envelope
from tests.whisper_checkpoint import SCRIPT_TEXT, build_checkpoint
from tts_studio.audio.decode import DecodedAudio
from tts_studio.config import Settings
from tts_studio.errors import InvalidRequest
from tts_studio.services.transcription import Transcriber
from tts_studio.services.whisper_models import MultilingualWhisper

CLIP = Path(__file__).resolve().parents[1] / "voices" / "lark.flac"  # English speech, 8.6 s
NEW_IDS = (
    "gpt-transcribe",
    "gpt-live-transcribe",
    "gpt-realtime-whisper",
    "gpt-4o-mini-transcribe-2025-12-15",
    "gpt-4o-transcribe-diarize",
)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The multilingual checkpoint, built once per session (a few seconds, about 14 MB)."""
    return build_checkpoint(tmp_path_factory.mktemp("whisper-multilingual"))


@pytest.fixture(scope="module")
def clip() -> bytes:
    return CLIP.read_bytes()


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path) -> Iterator[InProcess]:
    """A studio with the multilingual model in place (engine_dirs["whisper"])."""
    settings = make_settings(tmp_path_factory.mktemp("multilingual"), engine_dirs={"whisper": checkpoint})
    studio = start_in_process(settings)
    yield studio
    studio.stop()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What reaches faster-whisper: each call's keyword arguments and whether its model is multilingual (the
    real WhisperModel.transcribe runs)."""
    from faster_whisper import WhisperModel

    seen: list[dict[str, Any]] = []
    original = WhisperModel.transcribe

    def spy(self: Any, audio: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append({"multilingual": self.model.is_multilingual, **kwargs})
        return original(self, audio, *args, **kwargs)

    monkeypatch.setattr(WhisperModel, "transcribe", spy)
    return seen


def _whisper_health(studio: InProcess) -> dict[str, Any]:
    models: dict[str, Any] = studio.get("/health").json()["transcriber"]["models"]
    return models


def test_without_the_model_another_language_says_how_to_get_it(sdk: OpenAI, app_client: InProcess, clip: bytes) -> None:
    fields: dict[str, Any]
    for fields in ({"language": "fr"}, {"languages": ["fr", "de"]}):
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.audio.transcriptions.create(model="gpt-transcribe", file=("a.flac", clip), **fields)
        assert_envelope(refused.value.response.json(), "model_not_downloaded", next(iter(fields)))
        assert "tts-studio download whisper" in refused.value.message and "Models tab" in refused.value.message
    with pytest.raises(openai.BadRequestError) as unknown:
        sdk.audio.transcriptions.create(model="whisper-1", file=("a.flac", clip), language="xx")
    assert unknown.value.param == "language"
    english = sdk.audio.transcriptions.create(model="gpt-transcribe", file=("a.flac", clip))  # no language: English
    assert english.text and [lang.code for lang in english.languages or []] == ["en"]
    hinted = sdk.audio.transcriptions.create(model="gpt-transcribe", file=("a.flac", clip), languages=["fr", "en"])
    assert [lang.code for lang in hinted.languages or []] == ["en"]  # detection here knows English only
    multilingual = _whisper_health(app_client)["multilingual"]
    assert multilingual["present"] is False and "tts-studio download whisper" in multilingual["get_it"]


def test_the_transcriber_refuses_a_language_it_cannot_hear() -> None:
    audio = DecodedAudio(np.zeros(16000, np.float32), 16000, "pcm")
    transcriber = Transcriber()  # English only
    with pytest.raises(InvalidRequest) as refused:
        transcriber.transcribe(audio, language="de")
    assert refused.value.param == "language" and "tts-studio download whisper" in refused.value.message
    assert transcriber.for_library(audio, "fr-FR") == "" and not transcriber.loaded  # a voice: no transcript


def test_the_transcriber_hears_any_language_with_the_model(tmp_path: Path, checkpoint: Path) -> None:
    settings = make_settings(tmp_path, engine_dirs={"whisper": checkpoint})
    transcriber = Transcriber(multilingual=MultilingualWhisper(settings))
    audio = DecodedAudio(np.zeros(24000, np.float32), 24000, "pcm")
    for tag, code in (("de", "de"), ("pt-BR", "pt"), ("ja", "ja")):
        heard = transcriber.transcribe(audio, language=tag)
        assert (heard.language, heard.text, heard.model) == (code, SCRIPT_TEXT, str(checkpoint))
    assert transcriber.status()["models"]["multilingual"] == {"id": str(checkpoint), "present": True, "loaded": True}


def test_the_language_prompt_and_keywords_reach_the_multilingual_model(
    multi: InProcess, clip: bytes, calls: list[dict[str, Any]]
) -> None:
    sdk = multi.sdk()
    result = sdk.audio.transcriptions.create(
        model="gpt-transcribe", file=("a.flac", clip), language="fr", prompt="Salut, Élodie.",
        keywords=["Paris", "Lyon"], response_format="verbose_json", timestamp_granularities=["word"],
    )  # fmt: skip
    body: dict[str, Any] = result.to_dict()
    assert body["language"] == "french" and body["languages"] == [{"code": "fr"}]
    assert body["text"] == SCRIPT_TEXT and [w["word"] for w in body["words"]] == SCRIPT_TEXT.split()
    heard = calls[-1]
    assert heard["multilingual"] and heard["language"] == "fr"
    assert heard["initial_prompt"] == "Salut, Élodie." and heard["hotwords"] == "Paris, Lyon"
    assert heard["vad_filter"] is False  # no chunking_strategy: one block
    english = sdk.audio.transcriptions.create(model="whisper-1", file=("a.flac", clip), language="en")
    assert not calls[-1]["multilingual"] and english.text != SCRIPT_TEXT  # English stays on tiny.en
    models = _whisper_health(multi)
    assert models["multilingual"]["present"] and models["multilingual"]["loaded"] and models["english"]["loaded"]


def test_detection_and_the_languages_hint(multi: InProcess, clip: bytes, calls: list[dict[str, Any]]) -> None:
    sdk = multi.sdk()
    detected = sdk.audio.transcriptions.create(model="gpt-transcribe", file=("a.flac", clip))
    assert [lang.code for lang in detected.languages or []] == ["fr"] and calls[-1]["language"] is None
    among = sdk.audio.transcriptions.create(model="gpt-transcribe", file=("a.flac", clip), languages=["de", "es"])
    assert [lang.code for lang in among.languages or []] == ["de"] and calls[-1]["language"] == "de"
    one = sdk.audio.transcriptions.create(model="gpt-transcribe", file=("a.flac", clip), languages=["es"])
    assert [lang.code for lang in one.languages or []] == ["es"] and calls[-1]["language"] == "es"
    with pytest.raises(openai.BadRequestError) as unknown:
        sdk.audio.transcriptions.create(model="gpt-transcribe", file=("a.flac", clip), languages=["fr", "klingon"])
    assert unknown.value.param == "languages"


def test_the_final_stream_event_carries_the_language(multi: InProcess, clip: bytes) -> None:
    stream = multi.sdk().audio.transcriptions.create(
        model="gpt-4o-mini-transcribe", file=("a.flac", clip), language="fr", stream=True
    )
    events = list(stream)
    done = events[-1]
    assert done.type == "transcript.text.done" and done.text == SCRIPT_TEXT
    assert [lang.code for lang in done.languages or []] == ["fr"]


def test_a_french_voice_gets_its_transcript_from_the_multilingual_model(
    multi: InProcess, clip: bytes, calls: list[dict[str, Any]]
) -> None:
    voice = multi.sdk().audio.voices.create(
        name="Amélie", audio_sample=("amelie.flac", clip, "audio/flac"), consent="true", extra_body={"language": "fr"}
    )
    body = voice.to_dict()
    assert body["language"] == "fr" and body["transcript"] == SCRIPT_TEXT and body["transcript_source"] == "auto"
    assert calls[-1]["multilingual"] and calls[-1]["language"] == "fr"


def _render(studio: InProcess, project_id: str) -> dict[str, Any]:
    """Render and follow the project's events to the end; the final project."""
    assert studio.post(f"/v1/projects/{project_id}/render").status_code == 202
    statuses = []
    with studio.stream("GET", f"/v1/projects/{project_id}/events") as events:
        for line in events.iter_lines():
            if line.startswith("data: "):
                statuses.append(json.loads(line[6:])["status"])
    assert statuses[-1] == "done", statuses
    project: dict[str, Any] = studio.get(f"/v1/projects/{project_id}").json()
    return project


def _french_line(studio: InProcess, clip: bytes, name: str) -> dict[str, Any]:
    voice = studio.post(
        "/v1/audio/voices",
        data={"name": name, "transcript": "Bonjour.", "language": "fr", "consent": "true"},
        files={"audio_sample": ("a.flac", clip)},
    ).json()["id"]
    body = {"name": "Conte", "script": "Bonjour le monde.", "voices": {"Narrator": voice}, "model": "cloner"}
    created = studio.post("/v1/projects", json=body)
    assert created.status_code == 201, created.text
    project = _render(studio, created.json()["id"])
    lines: list[dict[str, Any]] = [line for chapter in project["chapters"] for line in chapter["lines"]]
    assert len(lines) == 1
    return lines[0]


def test_a_french_take_is_verified_only_with_the_multilingual_model(
    app_factory: Callable[..., InProcess], checkpoint: Path, clip: bytes
) -> None:
    cloner = double_info("cloner", cloning=True, languages=("en", "fr"))
    verified = _french_line(app_factory(registry=registry_with((cloner, Script()))), clip, "Amélie")
    assert verified["wer"] is None and "tts-studio download whisper" in verified["note"]  # kept, unverified
    takes = Script(pieces=15)  # 1.5 s a take: the checkpoint's words fall in its first second
    with_model = app_factory(registry=registry_with((cloner, takes)), engine_dirs={"whisper": checkpoint})
    verified = _french_line(with_model, clip, "Brigitte")  # the same data folder: another name
    assert verified["wer"] == 0.0 and verified["transcript"] == SCRIPT_TEXT and not verified["flagged"]


def test_chunking_strategy_cuts_silences_with_the_vad(sdk: OpenAI, clip: bytes, calls: list[dict[str, Any]]) -> None:
    auto = sdk.audio.transcriptions.create(model="gpt-transcribe", file=("a.flac", clip), chunking_strategy="auto")
    assert auto.text and calls[-1]["vad_filter"] is True and calls[-1]["vad_parameters"] is None  # VAD defaults
    vad = {"type": "server_vad", "threshold": 0.4, "silence_duration_ms": 300, "prefix_padding_ms": 100}
    tuned = sdk.audio.transcriptions.create(model="gpt-transcribe", file=("a.flac", clip), chunking_strategy=vad)  # type: ignore[call-overload]
    assert tuned.text and calls[-1]["vad_parameters"] == {
        "threshold": 0.4, "min_silence_duration_ms": 300, "speech_pad_ms": 100,
    }  # fmt: skip
    for bad in ({"type": "semantic_vad"}, {"type": "server_vad", "threshold": 2}, {"type": "server_vad", "x": 1}):
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.audio.transcriptions.create(model="gpt-transcribe", file=("a.flac", clip), chunking_strategy=bad)  # type: ignore[call-overload]
        assert refused.value.param == "chunking_strategy"


def test_the_new_transcription_ids(sdk: OpenAI, clip: bytes) -> None:
    for model in NEW_IDS:
        assert sdk.audio.transcriptions.create(model=model, file=("a.flac", clip)).text, model


def test_diarization_and_bad_keywords_are_refused_by_name(sdk: OpenAI, clip: bytes) -> None:
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"response_format": "diarized_json"}, "response_format"),
        ({"extra_body": {"known_speaker_names": ["agent"]}}, "known_speaker_names"),
        ({"keywords": [" "]}, "keywords"),
        ({"timestamp_granularities": ["sentence"]}, "timestamp_granularities"),
    ]
    for fields, param in refusals:
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.audio.transcriptions.create(model="gpt-4o-transcribe-diarize", file=("a.flac", clip), **fields)
        assert refused.value.param == param and refused.value.status_code == 400


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TTS_STUDIO_")}
    paths = {f"TTS_STUDIO_{name}_DIR": str(tmp_path / name.lower()) for name in ("CACHE", "DATA", "LOG")}
    return subprocess.run([sys.executable, "-m", "tts_studio", *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**clean, **paths, **env})  # fmt: skip


def test_download_whisper_refuses_clearly_offline(tmp_path: Path, checkpoint: Path) -> None:
    offline = _cli(tmp_path, "download", "whisper", HF_HUB_OFFLINE="1")
    assert offline.returncode == 1 and offline.stdout == ""
    lines = offline.stderr.strip().splitlines()
    assert len(lines) == 1 and "HF_HUB_OFFLINE" in lines[0] and "Systran/faster-whisper-small" in lines[0], lines
    local = _cli(tmp_path, "download", "whisper", HF_HUB_OFFLINE="1", TTS_STUDIO_ENGINE_DIRS=json.dumps(
        {"whisper": str(checkpoint)}))  # fmt: skip
    assert local.returncode == 0 and str(checkpoint) in local.stdout


def _into_hub_cache(checkpoint: Path, cache_dir: Path) -> Path:
    """The checkpoint where `tts-studio download whisper` puts the default repo (the hub cache, by repo id)."""
    repo = cache_dir / "hub" / "models--Systran--faster-whisper-small"
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    for file in checkpoint.iterdir():
        (snapshot / file.name).symlink_to(file)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    return snapshot


def test_the_multilingual_model_is_found_in_the_hub_cache(tmp_path: Path, checkpoint: Path) -> None:
    settings: Settings = make_settings(tmp_path)
    source = MultilingualWhisper(settings)
    assert source.path() is None
    snapshot = _into_hub_cache(checkpoint, settings.cache_dir)
    assert source.path() == snapshot and source.download() == snapshot  # nothing fetched: it is here


def test_the_models_tab_downloads_whisper_on_request(live_server: Callable[..., LiveServer], checkpoint: Path) -> None:
    """The Models tab's button through the real Gradio queue: offline it says why; once the model is in the
    cache (as a download leaves it) the tab shows it and transcription in French works."""
    from gradio_client import Client

    live = live_server(enable_ui=True)
    ui = Client(f"{live.url}/ui/", verbose=False)
    _, _, whisper, status = ui.predict(api_name="/do_whisper")
    assert status.startswith("⚠") and "HF_HUB_OFFLINE" in status and "not downloaded" in whisper
    _into_hub_cache(checkpoint, live.app.state.settings.cache_dir)
    _, _, whisper, status = ui.predict(api_name="/do_whisper")
    assert "is here" in status and "Systran/faster-whisper-small for every other language" in whisper
    french = live.client(max_retries=0).audio.transcriptions.create(
        model="gpt-transcribe", file=("a.flac", CLIP.read_bytes()), language="fr"
    )
    assert french.text == SCRIPT_TEXT


def test_realtime_hears_its_session_language_and_keywords(
    live_server: Callable[..., LiveServer], checkpoint: Path, calls: list[dict[str, Any]]
) -> None:
    """Realtime input audio goes to the multilingual model in the session's language, with its keywords as
    Whisper's hotwords."""
    import base64

    import soundfile as sf

    live = live_server(engine_dirs={"whisper": checkpoint})
    samples, rate = sf.read(CLIP, dtype="float32")
    at_24k = np.interp(np.arange(0, len(samples), rate / 24000), np.arange(len(samples)), samples)
    pcm = (np.clip(at_24k, -1, 1) * 32767).astype("<i2").tobytes()
    listen = {"language": "fr", "keywords": ["Paris", "Lyon"], "languages": ["fr"]}
    session: dict[str, Any] = {"type": "realtime", "audio": {"input": {"transcription": listen}}}
    with live.client(max_retries=0).realtime.connect(model="gpt-realtime-2.1-mini") as conn:
        conn.session.update(session=session)  # type: ignore[arg-type]
        assert conn.recv().type == "session.created"
        assert conn.recv().type == "session.updated"
        conn.input_audio_buffer.append(audio=base64.b64encode(pcm).decode())
        conn.input_audio_buffer.commit()
        heard = next(
            event.to_dict()
            for event in conn
            if event.type in ("conversation.item.input_audio_transcription.completed", "error")
        )
    assert heard["type"] == "conversation.item.input_audio_transcription.completed", heard
    assert heard["transcript"] == SCRIPT_TEXT
    assert calls[-1]["multilingual"] and calls[-1]["language"] == "fr" and calls[-1]["hotwords"] == "Paris, Lyon"
