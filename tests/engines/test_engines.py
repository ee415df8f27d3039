"""Chatterbox and VoxCPM through the API, on the real packages and their real loading code."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import soundfile as sf

from tests.conftest import LiveServer, decode, wait_until_idle
from tests.engines.conftest import CHATTERBOX_TOKENS
from tests.test_errors import assert_envelope
from tts_studio.engines.base import AudioChunk, SynthesisRequest

ENGINES = ["chatterbox", "voxcpm2", "voxcpm1.5"]


@pytest.fixture
def studio(live_server: Callable[..., LiveServer], checkpoints: dict[str, Path]) -> LiveServer:
    return live_server(engine_dirs=checkpoints, allow_downloads=False)


def speak(live: LiveServer, model: str, voice: str, text: str = "Hello there.", **extra: object) -> bytes:
    return (
        live.client(max_retries=0)
        .audio.speech.create(model=model, voice=voice, input=text, response_format="pcm", extra_body=extra or None)
        .content
    )


def add_voice(live: LiveServer, name: str, transcript: str | None = "A short reference sentence.") -> str:
    t = np.arange(24000 * 3) / 24000
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype("float32"), 24000,
             format="WAV")  # fmt: skip
    fields = {"name": name, **({"transcript": transcript} if transcript else {})}
    response = httpx.post(
        f"{live.base_url}/audio/voices", data=fields, files={"audio_sample": ("v.wav", buf.getvalue())}
    )
    assert response.status_code == 200, response.text
    voice_id: str = response.json()["id"]
    return voice_id


def engine(live: LiveServer, engine_id: str) -> object:
    with live.app.state.manager.lease(engine_id) as lease:
        return lease.engine


@pytest.mark.parametrize(
    ("model", "voice"),
    [("chatterbox", "alloy"), ("chatterbox-turbo", "alloy"), ("voxcpm2", "alloy"), ("voxcpm2", "default"),
     ("voxcpm1.5", "default")],
)  # fmt: skip
def test_each_engine_speaks(studio: LiveServer, model: str, voice: str) -> None:
    """alloy -> the bundled Heart clip, cloned. VoxCPM 1.5 cloning reads its prompt with torchaudio.load,
    which this CPU test venv lacks (torchcodec is CUDA-only here), so it speaks its default voice."""
    audio = speak(studio, model, voice)
    seconds = len(audio) / 48000
    assert seconds > 0.1
    if model == "chatterbox":
        assert seconds == pytest.approx(CHATTERBOX_TOKENS / 25, abs=0.1)
    assert studio.app.state.manager.status()[model]["device"] == "cpu"


@pytest.mark.parametrize("model", ["chatterbox", "voxcpm2"])
def test_clone_is_encoded_once_then_cached_on_disk(studio: LiveServer, model: str) -> None:
    voice = add_voice(studio, f"Clone for {model}")
    first = speak(studio, model, voice, seed=1)
    loaded = engine(studio, model)
    assert loaded.encoded == 1  # type: ignore[attr-defined]
    assert speak(studio, model, voice, seed=1) == first  # same seed, same audio; no second encoding
    assert loaded.encoded == 1  # type: ignore[attr-defined]
    cache_dir = Path(studio.app.state.settings.data_dir) / "voices" / voice / "cache"
    assert [p.name.split("-")[0] for p in cache_dir.iterdir()] == [model.split("-")[0]]
    assert studio.app.state.manager.unload(model)
    speak(studio, model, voice, seed=1)  # a fresh instance reads the cache from disk
    assert engine(studio, model).encoded == 0  # type: ignore[attr-defined]


def test_voxcpm15_needs_a_transcript(studio: LiveServer) -> None:
    voice = add_voice(studio, "No words", transcript=None)
    assert httpx.get(f"{studio.base_url}/audio/voices/{voice}").json()["transcript"] == ""
    with pytest.raises(openai.BadRequestError) as info:
        speak(studio, "voxcpm1.5", voice)
    assert "transcript" in info.value.message
    assert len(speak(studio, "voxcpm2", voice)) > 0  # VoxCPM2 clones from the audio alone
    assert engine(studio, "voxcpm2").encoded == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("model", ["chatterbox", "voxcpm2"])
def test_first_bytes_leave_before_the_end(studio: LiveServer, model: str) -> None:
    """The engine is held after its first piece until the client has bytes: that can only end well if the
    first audio leaves before synthesis ends."""
    speak(studio, model, "alloy")  # loaded
    real = engine(studio, model)
    original = real.stream  # type: ignore[attr-defined]
    client_has_bytes, waits, seen = threading.Event(), [], [0]

    def gated(request: SynthesisRequest) -> Iterator[AudioChunk]:
        for piece in original(request):
            seen[0] += 1
            if seen[0] > 1:  # every piece after the first waits for the client to hold audio
                waits.append(client_has_bytes.wait(60))
            yield piece

    real.stream = gated  # type: ignore[attr-defined]
    text = "First sentence here. Second one follows. A third one ends it."
    with studio.client(max_retries=0).audio.speech.with_streaming_response.create(
        model=model, voice="alloy", input=text, response_format="pcm"
    ) as response:
        for chunk in response.iter_bytes():
            if chunk:
                client_has_bytes.set()
    real.stream = original  # type: ignore[attr-defined]
    assert waits and all(waits)  # at least one later piece, and it waited for bytes the client already had


def test_loading_another_gpu_engine_evicts_the_last(studio: LiveServer) -> None:
    speak(studio, "voxcpm2", "alloy")
    speak(studio, "chatterbox", "alloy")
    engines = httpx.get(f"{studio.url}/health").json()["engines"]
    assert engines["chatterbox"]["state"] == "loaded" and engines["voxcpm2"]["state"] == "unloaded"
    assert speak(studio, "tts-1", "alloy")  # the embedded engine is not counted as a GPU engine
    assert httpx.get(f"{studio.url}/health").json()["engines"]["chatterbox"]["state"] == "loaded"


def test_embedded_engine_answers_while_a_gpu_engine_works(studio: LiveServer) -> None:
    """Chatterbox holds its device (mid-step, waiting for the quick answer); the embedded engine must not
    queue behind it."""
    speak(studio, "chatterbox", "alloy")  # loaded and warm
    real = engine(studio, "chatterbox")
    original = real.stream  # type: ignore[attr-defined]
    working, answered, waits = threading.Event(), threading.Event(), []

    def held(request: SynthesisRequest) -> Iterator[AudioChunk]:
        working.set()  # runs inside chatterbox's device turn
        waits.append(answered.wait(60))
        yield from original(request)

    real.stream = held  # type: ignore[attr-defined]
    done: list[int] = []
    worker = threading.Thread(target=lambda: done.append(len(speak(studio, "chatterbox", "alloy"))))
    worker.start()
    try:
        assert working.wait(60)
        assert speak(studio, "tts-1", "alloy", "Quick answer.")  # while chatterbox still holds its device
    finally:
        answered.set()
        worker.join(120)
        real.stream = original  # type: ignore[attr-defined]
    assert done and done[0] > 0 and waits and all(waits)  # chatterbox was never left waiting in vain


def test_idle_engines_unload(live_server: Callable[..., LiveServer], checkpoints: dict[str, Path]) -> None:
    live = live_server(engine_dirs=checkpoints, allow_downloads=False, idle_unload_seconds=0.3)
    speak(live, "voxcpm2", "alloy")
    deadline = time.monotonic() + 10
    while httpx.get(f"{live.url}/health").json()["engines"]["voxcpm2"]["state"] == "loaded":
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_missing_weights_offline_is_503_with_instructions(live_server: Callable[..., LiveServer]) -> None:
    for allow in (False, True):  # HF_HUB_OFFLINE=1 in the tests: a download attempt fails at once
        live = live_server(allow_downloads=allow)
        started = time.perf_counter()
        with pytest.raises(openai.InternalServerError) as info:
            speak(live, "chatterbox", "alloy")
        assert info.value.status_code == 503 and time.perf_counter() - started < 30
        error = assert_envelope(info.value.response.json(), "engine_unavailable")
        assert "tts-studio download chatterbox" in error["message"]
        live.stop()


@pytest.mark.parametrize(
    ("model", "extra", "param"),
    [("chatterbox", {"exaggeration": 5}, "exaggeration"), ("chatterbox", {"cfg_weight": "high"}, "cfg_weight"),
     ("chatterbox", {"temperature": 0}, "temperature"), ("voxcpm2", {"inference_timesteps": 0}, "inference_timesteps"),
     ("voxcpm2", {"cfg_value": 100}, "cfg_value"), ("voxcpm2", {"normalize": "yes"}, "normalize")],
)  # fmt: skip
def test_engine_parameters_are_validated(studio: LiveServer, model: str, extra: dict[str, object], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        speak(studio, model, "alloy", **extra)
    assert info.value.param == param


def test_engine_parameters_reach_the_engine(studio: LiveServer) -> None:
    plain = speak(studio, "voxcpm2", "alloy", seed=3, inference_timesteps=4, cfg_value=1.5)
    assert plain == speak(studio, "voxcpm2", "alloy", seed=3, inference_timesteps=4, cfg_value=1.5)
    assert plain != speak(studio, "voxcpm2", "alloy", seed=3, inference_timesteps=8, cfg_value=1.5)


def test_instructions_become_voxcpm2_style_prefix(studio: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    speak(studio, "voxcpm2", "alloy")
    tts = engine(studio, "voxcpm2")._model.tts_model  # type: ignore[attr-defined]
    seen: list[str] = []
    original = tts.generate_with_prompt_cache_streaming

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(str(kwargs["target_text"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(tts, "generate_with_prompt_cache_streaming", spy)
    studio.client(max_retries=0).audio.speech.create(
        model="gpt-4o-mini-tts", voice="alloy", input="Hello.", instructions="A calm, warm voice", response_format="wav"
    )
    assert seen == ["(A calm, warm voice)Hello."]


def test_openai_ids_map_to_installed_engines(studio: LiveServer) -> None:
    models = {m["id"]: m for m in httpx.get(f"{studio.base_url}/models").json()["data"]}
    assert models["tts-1"]["engine"] == "hibari" and models["tts-1-hd"]["engine"] == "voxcpm2"
    assert {"chatterbox", "voxcpm2", "voxcpm1.5"} <= set(models)
    assert models["chatterbox"]["parameters"]["exaggeration"]["default"] == 0.5
    audio = studio.client(max_retries=0).audio.speech.create(model="tts-1-hd", voice="alloy", input="Hi.")
    samples, rate = decode(audio.content, "mp3")
    assert rate == 24000 and len(samples) > 0
    wait_until_idle(studio)


def test_multilingual_speaks_languages_offline(studio: LiveServer) -> None:
    """Loads with no network (HF_HUB_OFFLINE; the Cangjie table comes from the weights folder, no segmenter
    download) and speaks."""
    for language, text in (("fr", "Bonjour tout le monde."), ("zh", "你好世界。"), ("en", "Hello.")):
        assert len(speak(studio, "chatterbox-multilingual", "alloy", text, language=language)) > 0
    with pytest.raises(openai.BadRequestError) as info:
        speak(studio, "chatterbox-multilingual", "alloy", "Hola.", language="xx")
    assert info.value.param == "language"


def test_turbo_needs_a_reference_over_five_seconds(studio: LiveServer) -> None:
    short = add_voice(studio, "Three seconds")  # 3 s
    with pytest.raises(openai.BadRequestError) as info:
        speak(studio, "chatterbox-turbo", short)
    assert "longer than 5 s" in info.value.message
