"""The CPU cloning engine (pocket-tts) on a default install, and Hugging Face tokens for gated weights: the
engine is listed and answers with what to install; a token is stored masked, never shown or logged, and
reaches every download; a gated repository is a 503 naming the page to accept and where the token goes."""

from __future__ import annotations

import importlib.util
import io
import logging
import stat
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
from pydantic import SecretStr

from tests.cloning import INFO as ECHO_INFO
from tests.cloning import EchoCloneEngine
from tests.conftest import InProcess, make_settings
from tests.test_errors import assert_envelope
from tts_studio.engines import hf_token
from tts_studio.engines.base import EngineInfo
from tts_studio.engines.registry import EngineSpec, default_registry
from tts_studio.engines.weights import hub_file, resolve_weights
from tts_studio.errors import EngineUnavailable, InvalidRequest

TOKEN = "hf_abcdefghijklmnopqrstuvwxyz0123456789WXYZ"
PAGE = "https://huggingface.co/kyutai/pocket-tts"


def _wav() -> bytes:
    t = np.arange(24000 * 2) / 24000
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 200 * t)).astype("float32"), 24000, format="WAV")
    return buf.getvalue()


def _add_voice(studio: InProcess, name: str) -> str:
    response = studio.post(
        "/v1/audio/voices", data={"name": name, "transcript": "Hello."}, files={"audio_sample": ("v.wav", _wav())}
    )
    assert response.status_code == 200, response.text
    voice_id: str = response.json()["id"]
    return voice_id


def _gated(*_: Any, **__: Any) -> Any:
    from huggingface_hub.errors import GatedRepoError

    response = httpx.Response(401, request=httpx.Request("GET", "https://huggingface.co/api"))
    raise GatedRepoError("Access to this repository is restricted.", response=response)


@pytest.mark.skipif(importlib.util.find_spec("pocket_tts") is not None, reason="pocket-tts is installed here")
@pytest.mark.parametrize(("model", "voice"), [("pocket", "alloy"), ("pocket", "library"), ("pocket-tts", "alloy")])
def test_default_install_lists_the_engine_and_says_what_to_install(
    app_client: InProcess, model: str, voice: str
) -> None:
    assert app_client.get("/health").json()["engines"]["pocket"]["installed"] is False
    if voice == "library":
        voice = _add_voice(app_client, "Pocket default install")
    response = app_client.post("/v1/audio/speech", json={"model": model, "input": "Hello.", "voice": voice})
    assert response.status_code == 503
    assert "pip install 'tts-studio[pocket]'" in assert_envelope(response.json())["message"]


def test_openai_ids_speak_a_cloned_voice_with_the_cpu_engine(app_factory: Callable[..., InProcess]) -> None:
    """tts-1 keeps the embedded engine for built-in voices and sends a library voice to `cloning_fallback`
    (here a stand-in registered as "pocket"); with the fallback off, the embedded engine refuses it."""
    registry = default_registry()
    registry["pocket"] = EngineSpec(replace(ECHO_INFO, id="pocket"), lambda settings: EchoCloneEngine())
    studio = app_factory(registry)
    voice = _add_voice(studio, "Mine")
    for model in ("tts-1", "gpt-4o-mini-tts"):
        response = studio.post("/v1/audio/speech", json={"model": model, "input": "Hi.", "voice": voice})
        assert response.status_code == 200, response.text
    assert studio.get("/health").json()["engines"]["pocket"]["state"] == "loaded"
    builtin = studio.post("/v1/audio/speech", json={"model": "tts-1", "input": "Hi.", "voice": "alloy"})
    assert builtin.status_code == 200
    assert studio.get("/health").json()["engines"]["hibari"]["state"] == "loaded"
    studio.app.state.settings.cloning_fallback = []
    refused = studio.post("/v1/audio/speech", json={"model": "tts-1", "input": "Hi.", "voice": voice})
    assert refused.status_code == 400
    assert_envelope(refused.json(), code="voice_not_supported")


def test_a_token_is_stored_privately_and_shown_masked(
    app_factory: Callable[..., InProcess],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token-file"))
    studio = app_factory()
    settings = studio.app.state.settings
    caplog.set_level(logging.DEBUG)
    shown = hf_token.save_token(settings, f"  {TOKEN}\n")
    path = hf_token.token_path(settings)
    assert path.read_text(encoding="utf-8") == TOKEN
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (shown.source, shown.masked) == ("studio", "hf_…WXYZ")
    assert hf_token.hf_token(settings) == TOKEN
    assert TOKEN not in shown.describe() and "hf_…WXYZ" in shown.describe()
    assert TOKEN not in studio.get("/health").text
    assert TOKEN not in caplog.text
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".hf_token")] == []  # no temp file left
    # the setting wins over the saved one; an empty entry removes the saved one
    settings.hf_token = SecretStr("hf_fromthesetting9876")
    assert hf_token.status(settings).source == "setting"
    settings.hf_token = None
    assert hf_token.save_token(settings, "").source is None
    assert not path.exists()


def test_hf_token_environment_and_the_standard_file_are_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    settings = make_settings(tmp_path)
    standard = tmp_path / "hf-home" / "token"
    standard.parent.mkdir()
    standard.write_text("hf_fromthestandardfile1234\n", encoding="utf-8")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(standard))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert (hf_token.hf_token(settings), hf_token.status(settings).source) == (
        "hf_fromthestandardfile1234",
        "huggingface",
    )
    monkeypatch.setenv("HF_TOKEN", "hf_fromtheenvironment5678")
    assert hf_token.status(settings).source == "environment"
    with pytest.raises(InvalidRequest):
        hf_token.save_token(settings, "not a token")


def test_every_download_carries_the_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    settings = make_settings(tmp_path, hf_token=TOKEN)
    calls: list[dict[str, Any]] = []

    def snapshot(repo_id: str, **kwargs: Any) -> str:
        calls.append(kwargs)
        if kwargs.get("local_files_only"):
            raise FileNotFoundError(repo_id)
        return str(tmp_path)

    def one_file(repo_id: str, filename: str, **kwargs: Any) -> str:
        calls.append(kwargs)
        if kwargs.get("local_files_only"):
            raise FileNotFoundError(filename)
        return str(tmp_path / filename)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", one_file)
    info = EngineInfo(id="gated", name="g", description="", sample_rate=24000, weights_repo="owner/repo")
    assert resolve_weights(settings, info, download=True) == tmp_path
    assert hub_file(settings, "owner/repo", "model.safetensors", "abc", "weights") == tmp_path / "model.safetensors"
    online = [call for call in calls if not call.get("local_files_only")]
    assert len(online) == 2 and all(call["token"] == TOKEN for call in online)


def test_a_gated_repository_is_a_503_naming_the_page_and_the_token(
    app_factory: Callable[..., InProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", _gated)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _gated)
    info = replace(ECHO_INFO, id="gated-clone", weights_repo="kyutai/pocket-tts", gpu=True)  # prepare() fetches
    registry = {**default_registry(), "gated-clone": EngineSpec(info, lambda settings: EchoCloneEngine())}
    studio = app_factory(registry, allow_downloads=True)
    response = studio.post("/v1/audio/speech", json={"model": "gated-clone", "input": "Hi.", "voice": "alloy"})
    assert response.status_code == 503
    error = assert_envelope(response.json(), code="gated")
    assert PAGE in error["message"] and "hf_token" in error["message"] and "Models tab" in error["message"]
    with pytest.raises(EngineUnavailable) as raised:
        hub_file(studio.app.state.settings, "kyutai/pocket-tts", "languages/english/model.safetensors", None, "W")
    assert raised.value.status == 503 and PAGE in raised.value.message


def test_the_models_tab_takes_a_token_and_never_shows_it_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import fields

    import gradio as gr
    from huggingface_hub import constants

    from tts_studio.studio import build_services
    from tts_studio.ui import models_tab
    from tts_studio.ui.context import Studio

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token-file"))
    services = build_services(make_settings(tmp_path), default_registry())
    with gr.Blocks() as demo:
        models_tab.build(Studio(**{f.name: getattr(services, f.name) for f in fields(services)}))
    props = {c["props"].get("elem_id"): c["props"] for c in demo.config["components"]}
    assert props["models-hf-token"]["type"] == "password"
    assert "No Hugging Face token" in props["models-hf-token-status"]["value"]
    save = next(block.fn for block in demo.fns.values() if getattr(block.fn, "__name__", "") == "do_token")
    assert save is not None
    cleared, shown = save(TOKEN)
    assert cleared == "" and TOKEN not in shown and "hf_…WXYZ" in shown
    assert hf_token.hf_token(services.settings) == TOKEN
    _, refused = save("two words")
    assert refused.startswith("⚠") and hf_token.hf_token(services.settings) == TOKEN


def test_a_cloning_engine_waiting_for_its_token_is_not_offered(app_factory: Callable[..., InProcess]) -> None:
    ready = {"now": False}
    registry = default_registry()
    registry["pocket"] = EngineSpec(
        replace(ECHO_INFO, id="pocket"), lambda settings: EchoCloneEngine(), cloning_ready=lambda _: ready["now"]
    )
    studio = app_factory(registry)
    voice = _add_voice(studio, "Waiting")

    def entry() -> dict[str, Any]:
        listed = studio.get("/v1/audio/voices", params={"all": "true"}).json()["voices"]
        found: dict[str, Any] = next(e for e in listed if e["id"] == voice)
        return found

    waiting = entry()
    assert waiting["engines"] == [] and "Models tab" in waiting["reason"] and "pocket" in waiting["reason"]
    ready["now"] = True
    assert entry()["engines"] == ["pocket"]
