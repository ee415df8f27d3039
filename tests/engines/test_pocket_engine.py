"""pocket-tts (the CPU cloning engine) through the API, on the real package and its real loader: a random-weight
model from a local config (no weights, a local tokenizer), cloning a voice uploaded through the API."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, make_settings, start_server
from tests.engines.checkpoints import build_pocket
from tests.engines.test_engines import add_voice
from tests.test_errors import assert_envelope

pytest.importorskip("pocket_tts")

PAGE = "https://huggingface.co/kyutai/pocket-tts"
TEXT = "Hi there."  # a few tokens: pocket-tts bounds the length (random weights may never stop)


@pytest.fixture(scope="module")
def pocket_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_pocket(tmp_path_factory.mktemp("pocket"))


@pytest.fixture(scope="module")
def studio(pocket_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("pocket-studio")
    live = start_server(make_settings(root, engine_dirs={"pocket": pocket_dir}, allow_downloads=False))
    yield live
    live.stop()


def test_an_uploaded_voice_is_offered_for_pocket_and_streams_through_the_sdk(studio: LiveServer) -> None:
    voice = add_voice(studio, "Pocket clone", transcript=None)
    listed = httpx.get(f"{studio.base_url}/audio/voices").json()["voices"]
    assert "pocket" in next(entry for entry in listed if entry["id"] == voice)["engines"]
    with studio.client(max_retries=0).audio.speech.with_streaming_response.create(
        model="pocket", voice=voice, input=TEXT, response_format="pcm"
    ) as response:
        assert response.status_code == 200
        pieces = [piece for piece in response.iter_bytes() if piece]
    assert sum(len(piece) for piece in pieces) / 48000 > 0.3  # pcm16 at 24 kHz
    engine = _engine(studio)
    assert engine.encoded == 1
    # tts-1 keeps the embedded engine for built-in voices; a cloned voice goes to pocket (cloning_fallback),
    # whose voice state is cached: no second encoding
    again = studio.client(max_retries=0).audio.speech.create(model="tts-1", voice=voice, input=TEXT)
    assert len(again.content) > 1000
    assert engine.encoded == 1


def _engine(live: LiveServer) -> Any:
    with live.app.state.manager.lease("pocket") as lease:
        return lease.engine


def test_loading_leaves_the_thread_count_alone(pocket_dir: Path, tmp_path: Path) -> None:
    """Importing pocket_tts sets torch's thread count to 1 for the process; the engine's import and load put it
    back. pocket_tts is imported afresh here (its modules set aside, then restored), so the import really runs."""
    import torch

    from tts_studio.engines.registry import default_registry

    spec = default_registry()["pocket"]
    settings = make_settings(tmp_path, engine_dirs={"pocket": pocket_dir})
    saved = {name: module for name, module in sys.modules.items() if name.partition(".")[0] == "pocket_tts"}
    original = torch.get_num_threads()
    for name in saved:
        del sys.modules[name]
    torch.set_num_threads(3)
    try:
        spec.import_packages()
        assert "pocket_tts.models.tts_model" in sys.modules and sys.modules["pocket_tts"] is not saved["pocket_tts"]
        assert torch.get_num_threads() == 3
        engine = spec.factory(settings)
        engine.load("cpu")
        assert torch.get_num_threads() == 3
        engine.unload()
    finally:
        for name in [name for name in sys.modules if name.partition(".")[0] == "pocket_tts"]:
            del sys.modules[name]
        sys.modules.update(saved)
        torch.set_num_threads(original)


def test_without_the_cloning_weights_the_answer_names_the_page_and_the_token(
    pocket_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, live_server: Callable[..., LiveServer]
) -> None:
    """pocket-tts falls back to its bundle without cloning when the gated repository refuses it: that is a 503
    saying what to do, never a built-in voice."""
    from pocket_tts import TTSModel

    real = TTSModel.load_model.__func__  # type: ignore[attr-defined]

    def without_cloning(cls: Any, *args: Any, **kwargs: Any) -> Any:
        model = real(cls, *args, **kwargs)
        model.has_voice_cloning = False  # what the fallback bundle reports
        return model

    monkeypatch.setattr(TTSModel, "load_model", classmethod(without_cloning))
    live = live_server(engine_dirs={"pocket": pocket_dir}, allow_downloads=False)
    response = httpx.post(f"{live.base_url}/audio/speech", json={"model": "pocket", "voice": "alloy", "input": TEXT})
    assert response.status_code == 503
    message = assert_envelope(response.json(), code="gated")["message"]
    assert PAGE in message and "hf_token" in message and "Models tab" in message


def test_hub_weights_come_at_the_pinned_revision_with_the_token_and_a_refusal_is_the_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without engine_dirs the package's config is used, its files fetched through the studio (the user's token,
    the release's revisions); no fallback to the bundle without cloning is ever configured."""
    import huggingface_hub
    import yaml

    from tests.test_pocket_gate import _gated
    from tts_studio.config import Settings
    from tts_studio.engines.pocket_engine import PocketEngine
    from tts_studio.errors import EngineUnavailable

    calls: list[tuple[str, str, str | None, object]] = []
    refuse = {"kyutai/pocket-tts"}

    def download(repo_id: str, filename: str, **kwargs: Any) -> str:
        if kwargs.get("local_files_only"):
            raise FileNotFoundError(filename)
        calls.append((repo_id, filename, kwargs.get("revision"), kwargs.get("token")))
        if repo_id in refuse:
            _gated()
        return str(tmp_path / Path(filename).name)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    engine = PocketEngine(Settings(data_dir=tmp_path, cache_dir=tmp_path, hf_token="hf_tokenforthetest1234"))
    with pytest.raises(EngineUnavailable) as raised:
        engine.load("cpu")
    assert raised.value.status == 503 and raised.value.code == "gated" and PAGE in raised.value.message
    assert calls[0][:2] == ("kyutai/pocket-tts", "languages/english/model.safetensors")
    assert calls[0][2] and calls[0][3] == "hf_tokenforthetest1234"  # a pinned revision, the token
    refuse.clear()
    config = yaml.safe_load(engine._config("french").read_text(encoding="utf-8"))
    assert config["weights_path"] == str(tmp_path / "model.safetensors")
    assert config["weights_path_without_voice_cloning"] is None
    assert config["flow_lm"]["lookup_table"]["tokenizer_path"] == str(tmp_path / "tokenizer.json")


def test_with_no_token_a_voice_is_not_offered_and_a_request_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, live_server: Callable[..., LiveServer]
) -> None:
    """No local model, no weights, no token (and no network): the gated repository would refuse, so library
    voices do not list pocket; asking for it anyway is the 503 with the page and the token's places. Once a
    token is saved, the engine is offered again."""
    from huggingface_hub import constants

    from tts_studio.engines import hf_token

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("TTS_STUDIO_HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token-file"))
    live = live_server()
    voice = add_voice(live, "Not yet", transcript=None)

    def offered() -> list[str]:
        listed = httpx.get(f"{live.base_url}/audio/voices").json()["voices"]
        engines: list[str] = next(entry for entry in listed if entry["id"] == voice)["engines"]
        return engines

    assert "pocket" not in offered()
    response = httpx.post(f"{live.base_url}/audio/speech", json={"model": "pocket", "voice": voice, "input": TEXT})
    assert response.status_code == 503
    message = assert_envelope(response.json(), code="gated")["message"]
    assert PAGE in message and "hf_token" in message and "Models tab" in message
    hf_token.save_token(live.app.state.settings, "hf_savedonthemodelstab1234")
    assert "pocket" in offered()
