"""The studio in headless Chromium: speak, upload a voice, use it, delete it; no request leaves 127.0.0.1."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import soundfile as sf
from hibari import Hibari

from tests.conftest import LiveServer
from tests.ui_helpers import ARTIFACTS, browser, ui_server  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser
LOCAL = ("http://127.0.0.1", "blob:", "data:")
# A loaded audio result: newer Gradio 6 sets <audio src>, 6.8 (chatterbox's pin) draws a waveform instead.
AUDIO_READY = "audio[src], [data-testid^='waveform-']"


def _open(browser: Any, url: str) -> tuple[Any, Any]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.outside = []
    page.on("request", lambda r: page.outside.append(r.url) if not r.url.startswith(LOCAL) else None)
    loaded: list[str] = []  # the page's load events (base URL, model parameters) answered
    page.on("response", lambda r: loaded.append(r.url) if r.url.endswith("/gradio_api/run/predict") else None)
    page.goto(f"{url}/")  # redirects to /ui/
    # Interact only once the load events are answered: under load, Gradio 6.8 could drop text typed before.
    deadline = time.monotonic() + 30
    while len(loaded) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    return context, page


@pytest.fixture
def page(browser: Any, ui_server: LiveServer) -> Iterator[Any]:  # noqa: F811
    context, page = _open(browser, ui_server.url)
    yield page
    assert page.outside == [], f"requests outside 127.0.0.1: {page.outside}"
    context.close()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_speak_flow_and_download(page: Any, ui_server: LiveServer) -> None:  # noqa: F811
    from playwright.sync_api import expect

    page.locator("#tts-text textarea").fill("Hello from the browser. TTS Studio speaks on this machine.")
    page.locator("#gen-btn").click()
    expect(page.locator(f"#tts-audio :is({AUDIO_READY})").first).to_be_attached(timeout=30_000)
    expect(page.locator("#gen-info textarea")).to_have_value(re.compile(r"s of audio in .* hibari"))
    expect(page.locator("#tts-audio .progress-text")).to_have_count(0)
    href = page.locator("#tts-audio a[download]").first.get_attribute("href")
    assert href and href.endswith(".mp3")
    download = page.request.get(href if href.startswith("http") else f"{ui_server.url}{href}")
    assert download.status == 200 and download.body()[:3] == b"ID3"
    history = page.locator("#history-pick input")
    history.click()
    page.get_by_role("option").first.click()
    expect(page.locator(f"#history-audio :is({AUDIO_READY})").first).to_be_attached(timeout=10_000)
    shot(page, "speak")


def test_voice_upload_use_and_delete(page: Any, ui_server: LiveServer, tmp_path: Path) -> None:  # noqa: F811
    from playwright.sync_api import expect

    clip = tmp_path / "keeper.wav"
    text = "Every evening the keeper climbed the stairs and polished the great lens of the lighthouse."
    sf.write(str(clip), Hibari(threads=1)(text, seed=0), 24000)

    page.get_by_role("tab", name="Voices").click()
    page.locator("#voice-audio input[type=file]").set_input_files(str(clip))
    expect(page.locator("#voice-transcript textarea")).to_have_value(re.compile("lighthouse", re.I), timeout=30_000)
    page.locator("#voice-name textarea, #voice-name input").first.fill("Lighthouse Keeper")
    page.locator("#voice-save").click()
    expect(page.locator("#voice-status textarea")).to_have_value(re.compile("consent"))  # refused without it
    page.locator("#voice-consent input").check()
    page.locator("#voice-save").click()
    expect(page.locator("#voice-status textarea")).to_have_value(re.compile("Saved 'Lighthouse Keeper'"))
    shot(page, "voices")
    listed = httpx.get(f"{ui_server.base_url}/audio/voices", params={"all": "true"}).json()["voices"]
    voice = next(v for v in listed if v["name"] == "Lighthouse Keeper")
    assert voice["transcript_source"] == "auto" and voice["consent"] is True

    # without a cloning engine the Speak tab offers only voices that can be spoken: not the clone
    page.get_by_role("tab", name="Speak").click()
    page.locator("#voice input").click()
    expect(page.get_by_role("option", name=re.compile("alloy"))).to_have_count(1)
    expect(page.get_by_role("option", name=re.compile("Lighthouse Keeper"))).to_have_count(0)
    page.keyboard.press("Escape")

    page.get_by_role("tab", name="Voices").click()
    page.locator("#voice-pick input").click()
    page.get_by_role("option", name=re.compile("Lighthouse Keeper")).click()
    expect(page.locator(f"#voice-preview :is({AUDIO_READY})").first).to_be_attached(timeout=10_000)
    page.locator("#voice-delete").click()
    page.locator("#voice-delete-confirm").click()
    expect(page.locator("#voice-manage-status textarea")).to_have_value(re.compile("Deleted 'Lighthouse Keeper'"))
    names = [v["name"] for v in httpx.get(f"{ui_server.base_url}/audio/voices?all=true").json()["voices"]]
    assert "Lighthouse Keeper" not in names


def test_voice_added_over_the_api_appears_in_the_page(page: Any, ui_server: LiveServer) -> None:  # noqa: F811
    from playwright.sync_api import expect

    clip = Path(__file__).resolve().parents[1] / "voices" / "dusk.flac"
    response = httpx.post(f"{ui_server.base_url}/audio/voices", data={"name": "From the API", "transcript": "x"},
                          files={"audio_sample": ("dusk.flac", clip.read_bytes())})  # fmt: skip
    assert response.status_code == 200
    page.get_by_role("tab", name="Speak").click()
    page.get_by_role("tab", name="Voices").click()
    page.locator("#voice-pick input").click()
    expect(page.get_by_role("option", name=re.compile("From the API"))).to_have_count(1)


def test_models_and_connect_tabs(page: Any, ui_server: LiveServer) -> None:  # noqa: F811
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Models").click()
    expect(page.locator("#models-table")).to_contain_text("hibari")
    expect(page.locator("#models-table")).to_contain_text("pip install 'tts-studio[chatterbox]'")
    page.locator("#models-load").click()
    expect(page.locator("#models-status textarea")).to_have_value(re.compile("hibari is loaded"), timeout=30_000)
    shot(page, "models")
    page.get_by_role("tab", name="Connect").click()
    expect(page.locator("#base-url textarea, #base-url input").first).to_have_value(f"{ui_server.url}/v1")
    expect(page.locator("#setup-notes")).to_contain_text("Open WebUI")
    expect(page.locator("#snippet-python")).to_contain_text(f"{ui_server.url}/v1")
    shot(page, "connect")
    page.goto(f"{ui_server.url}/docs")  # the API page too: nothing from outside (checked by the fixture)
    expect(page.locator("h1")).to_contain_text("TTS Studio API")


def test_convert_tab_without_the_engine_says_what_to_install(page: Any) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Convert").click()
    expect(page.locator("#convert-status")).to_contain_text("pip install 'tts-studio[chatterbox]'")
    expect(page.locator("#convert-source")).to_be_visible()
    page.locator("#convert-btn").click()  # nothing recorded yet: a message, no error page
    expect(page.locator("#convert-info")).to_contain_text("Upload or record")
    shot(page, "convert")


def _talk(page: Any, text: str) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Talk").click()
    page.locator("#talk-text textarea").fill(text)
    page.locator("#talk-send").click()
    expect(page.locator(f"#talk-audio :is({AUDIO_READY})").first).to_be_attached(timeout=60_000)
    expect(page.locator("#talk-info")).to_contain_text("s of audio")


def test_talk_tab_speaks_typed_text_without_an_upstream(page: Any) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Talk").click()
    expect(page.locator("#talk-status")).to_contain_text("TTS_STUDIO_CHAT_UPSTREAM")
    _talk(page, "Speak this sentence for me.")
    expect(page.locator("#talk-chat")).to_contain_text("Speak this sentence for me.")


@pytest.mark.slow
def test_talk_tab_text_turn_with_an_upstream(browser: Any, llm: Any, tmp_path: Path) -> None:  # noqa: F811
    from playwright.sync_api import expect

    from tests.conftest import make_settings, start_server
    from tests.llm_upstream import MODEL_ID

    live = start_server(make_settings(tmp_path, enable_ui=True, chat_upstream=llm.url, chat_model=MODEL_ID))
    context, page = _open(browser, live.url)
    try:
        # greedy decoding: the first words of a short answer are the first words of the long one
        body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Hello there."}], "max_tokens": 3}
        expected = httpx.post(f"{llm.url}/chat/completions", json=body, timeout=120).json()
        reply = " ".join(expected["choices"][0]["message"]["content"].split()[:3])
        _talk(page, "Hello there.")
        chat = page.locator("#talk-chat")
        expect(chat).to_contain_text("Hello there.")
        expect(chat).to_contain_text(reply)  # the LLM's answer (its first words), shown and spoken
        shot(page, "talk")
        assert page.outside == [], f"requests outside 127.0.0.1: {page.outside}"
    finally:
        context.close()
        live.stop()


def test_projects_tab_create_render_export(page: Any, ui_server: LiveServer) -> None:  # noqa: F811
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Projects").click()
    page.locator("#project-name textarea, #project-name input").first.fill("Browser book")
    page.locator("#project-create").click()
    expect(page.locator("#project-cast textarea")).to_have_value(re.compile("Alice: alloy"), timeout=30_000)
    page.locator("#project-render").click()
    expect(page.locator("#project-status")).to_contain_text("done · 3/3 lines", timeout=120_000)
    expect(page.locator("#project-status progress")).to_have_attribute("value", "3")
    expect(page.locator("#project-lines")).to_contain_text("Did you sleep well?")
    page.locator("#project-export").click()
    link = page.locator("#project-file a[download], #project-file a").first
    expect(link).to_be_attached(timeout=60_000)
    href = link.get_attribute("href")
    assert href and ".m4b" in href
    download = page.request.get(href if href.startswith("http") else f"{ui_server.url}{href}")
    assert download.status == 200 and download.body()[4:8] == b"ftyp"
    shot(page, "projects")
