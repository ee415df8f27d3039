"""`build_ui(studio)` -> gr.Blocks, and `mount_ui(app, studio)`: the UI at /ui on the API's FastAPI app."""

from __future__ import annotations

import hmac
import inspect
from dataclasses import fields
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import FastAPI

from tts_studio import __version__
from tts_studio.config import exposed_without_key
from tts_studio.studio import Services
from tts_studio.ui import connect, convert_tab, models_tab, projects_tab, speak, talk_tab, voices_tab
from tts_studio.ui.context import Studio
from tts_studio.ui.offline_page import OfflinePage

ASSETS = Path(__file__).resolve().parents[2] / "assets"
UI_PATH = "/ui"


def theme() -> gr.themes.Base:
    """System fonts only: the page must not fetch anything from outside 127.0.0.1."""
    soft: gr.themes.Base = gr.themes.Soft(
        primary_hue="indigo",
        secondary_hue="slate",
        font=["Inter", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
    )
    return soft


def build_ui(studio: Studio) -> gr.Blocks:
    with gr.Blocks(title="TTS Studio", analytics_enabled=False, delete_cache=(3600, 86400)) as demo:
        gr.HTML(f'<div id="studio-header"><h1>TTS Studio</h1><span>local · private · v{__version__}</span></div>')
        if exposed_without_key(studio.settings):
            gr.HTML(
                '<div id="exposure-banner" role="alert">This studio listens beyond this computer '
                f"({studio.settings.host}) without an API key: anyone on your network can use it and your "
                "voices. Set TTS_STUDIO_API_KEY (or api_key_file) and restart.</div>"
            )
        with gr.Tabs():
            with gr.Tab("Speak", id="speak", elem_id="tab-speak") as speak_tab:
                speaking = speak.build(studio)
            with gr.Tab("Projects", id="projects", elem_id="tab-projects"):
                projects_tab.build(studio)
            with gr.Tab("Talk", id="talk", elem_id="tab-talk"):
                talk_tab.build(studio)
            with gr.Tab("Convert", id="convert", elem_id="tab-convert") as convert_page:
                converting = convert_tab.build(studio)
            with gr.Tab("Voices", id="voices", elem_id="tab-voices") as voices_page:
                managing = voices_tab.build(studio, speaking)
            with gr.Tab("Models", id="models", elem_id="tab-models") as models_page:
                models = models_tab.build(studio)
            with gr.Tab("Connect", id="connect", elem_id="tab-connect"):
                connect.build(studio, demo)

        def fresh_lists() -> tuple[Any, ...]:  # voices added through the API show up on every visit
            lists: tuple[Any, ...] = managing["refresh"]()
            return lists

        for tab in (speak_tab, voices_page):
            tab.select(fresh_lists, None, managing["lists"], queue=False)
        models_page.select(models["refresh"], None, models["outputs"], queue=False)
        convert_page.select(converting["refresh"], None, converting["outputs"], queue=False)
        demo.load(speaking["show_params"], speaking["model"], speaking["param_outputs"], queue=False)
    queued: gr.Blocks = demo.queue(max_size=32, default_concurrency_limit=2)
    return queued


def mount_ui(app: FastAPI, services: Services) -> FastAPI:
    css_file = ASSETS / "studio.css"
    studio = Studio(**{f.name: getattr(services, f.name) for f in fields(services)})
    key = services.settings.api_key

    def same_key(_user: str, password: str) -> bool:
        return key is not None and hmac.compare_digest(password.encode(), key.get_secret_value().encode())

    # No run-history page or Hugging Face bucket routes (they can reach a saved HF token); older
    # Gradio 6 releases (the one chatterbox-tts pins) have neither the routes nor the parameter.
    extra: dict[str, Any] = {}
    if "run_history" in inspect.signature(gr.mount_gradio_app).parameters:
        extra["run_history"] = False
    mounted: FastAPI = gr.mount_gradio_app(
        app,
        build_ui(studio),
        path=UI_PATH,
        auth=same_key if key is not None else None,  # with an API key set, the page asks for it too
        auth_message="This studio is protected: sign in with any user name and the API key as password.",
        theme=theme(),
        css_paths=[css_file] if css_file.exists() else None,
        footer_links=[],
        show_error=True,
        ssr_mode=False,
        **extra,
    )
    mounted.add_middleware(OfflinePage, prefix=UI_PATH)
    return mounted
