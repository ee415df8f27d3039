"""UI event logic through gradio_client and the real Gradio queue (no browser needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.ui_helpers import ui_server  # noqa: F401 - fixture

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
VOICES = Path(__file__).resolve().parents[1] / "voices"


@pytest.fixture(scope="module")
def ui(ui_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Any:  # noqa: F811
    from gradio_client import Client

    return Client(f"{ui_server.url}/ui/", verbose=False, download_files=str(tmp_path_factory.mktemp("dl")))


def _generate_args(text: str, voice: str = "alloy", model: str = "tts-1") -> list[Any]:
    """/generate takes text, voice, model, format, speed, instructions, then one control per parameter of the
    installed engines: only the embedded engine's `seed` here (no GPU engine in this venv), left empty."""
    return [text, voice, model, "wav", 1.0, "", None]


def test_generate_writes_history(ui: Any) -> None:
    audio, info, _ = ui.predict(*_generate_args("One. Two. Three."), api_name="/generate")
    assert Path(audio).read_bytes()[:4] == b"RIFF"
    assert "s of audio" in info and "hibari" in info


def test_long_text_becomes_one_file(ui: Any, ui_server: LiveServer) -> None:  # noqa: F811
    text = "This sentence is part of a long chapter that goes on. " * 100  # over the 4,096-character limit
    assert len(text) > ui_server.app.state.settings.max_input_chars
    audio, info, _ = ui.predict(*_generate_args(text), api_name="/generate")
    import soundfile as sf

    assert sf.info(audio).duration > 150
    assert "⚠" not in info


def test_errors_become_messages(ui: Any) -> None:
    audio, info, _ = ui.predict(*_generate_args("   "), api_name="/generate")
    assert audio is None and info.startswith("⚠")


def test_add_and_delete_voice_events(ui: Any, ui_server: LiveServer) -> None:  # noqa: F811
    from gradio_client import handle_file

    refused = ui.predict(handle_file(str(VOICES / "lark.flac")), "Evt", "en", "", False, "", api_name="/add_voice")
    assert "consent" in refused[0]
    saved = ui.predict(handle_file(str(VOICES / "lark.flac")), "Evt", "en", "We packed a picnic.", True, "",
                       api_name="/add_voice")  # fmt: skip
    assert saved[0].startswith("Saved 'Evt'")
    voice = next(
        v for v in httpx.get(f"{ui_server.base_url}/audio/voices?all=true").json()["voices"] if v["name"] == "Evt"
    )
    assert voice["transcript_source"] == "user"
    duplicate = ui.predict(handle_file(str(VOICES / "lark.flac")), "evt", "en", "x", True, "", api_name="/add_voice")
    assert "already exists" in duplicate[0]
    edited = ui.predict(voice["id"], "Evt renamed", "New words.", api_name="/edit_voice")
    assert edited[0] == "Saved."
    renamed = httpx.get(f"{ui_server.base_url}/audio/voices/{voice['id']}").json()
    assert renamed["name"] == "Evt renamed" and renamed["transcript"] == "New words."
    mapped = ui.predict("shimmer", voice["id"], api_name="/assign_voice")
    assert mapped[0] == "Mapping saved." and ["shimmer", "Evt renamed", "user"] in mapped[4]["data"]
    assert httpx.get(f"{ui_server.base_url}/audio/voices/shimmer").json()["maps_to"] == [voice["id"]]
    deleted = ui.predict(voice["id"], api_name="/delete_voice")
    assert deleted[0] == "Deleted 'Evt renamed'."
    assert httpx.get(f"{ui_server.base_url}/audio/voices/{voice['id']}").status_code == 404
    shimmer = httpx.get(f"{ui_server.base_url}/audio/voices/shimmer").json()
    assert shimmer["mapping_source"] == "default"  # a deleted voice leaves no dangling mapping


def test_page_asks_for_the_api_key_when_one_is_set(live_server: Any, tmp_path: Path) -> None:
    from gradio_client import Client
    from gradio_client.exceptions import AuthenticationError

    live = live_server(enable_ui=True, api_key="s3cret")
    with pytest.raises(AuthenticationError):
        Client(f"{live.url}/ui/", verbose=False)
    client = Client(f"{live.url}/ui/", auth=("anyone", "s3cret"), verbose=False, download_files=str(tmp_path))
    refused = client.predict(None, "x", "en", "", True, "", api_name="/add_voice")
    assert refused[0] == "Add a recording or a file first."
