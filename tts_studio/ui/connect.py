"""The Connect tab: the base URL to paste into apps, copyable snippets and setup notes."""

from __future__ import annotations

from typing import Any

import gradio as gr

from tts_studio.ui.context import Studio

NOTES = """
**Open WebUI**: Admin Settings → Audio → Text-to-Speech Engine *OpenAI*; API Base URL `{base}`;
API key: {key}; model `tts-1` (or an engine id); voice `alloy` or the id of one of your voices. With a chat
upstream (`TTS_STUDIO_CHAT_UPSTREAM`), add `{base}` under Admin Settings → Connections → OpenAI API too:
one base URL for chat and speech.

**SillyTavern**: Extensions → TTS → provider *OpenAI Compatible*; endpoint `{base}/audio/speech`;
model `tts-1`; voices: any id from the Voices tab (mp3 is the default format).

**Home Assistant**: start the studio with `--wyoming 10200` (or `TTS_STUDIO_WYOMING_PORT=10200`), then
Settings → Devices & services → Add integration → *Wyoming Protocol* → host of this machine, port 10200:
speech and speech-to-text, no add-on. {wyoming}Or use the *OpenAI TTS* custom integration
(sfortis/openai_tts) with URL `{base}/audio/speech`.

Any OpenAI SDK: set `base_url` to `{base}`; every voice id in the Voices tab and every engine id in the
Models tab works as `voice` / `model`.
"""


def snippets(base: str, key: str) -> tuple[str, str, str]:
    python = f'''from openai import OpenAI

client = OpenAI(base_url="{base}", api_key="{key}")
with client.audio.speech.with_streaming_response.create(
    model="tts-1", voice="alloy", input="Hello from TTS Studio!"
) as response:
    response.stream_to_file("hello.mp3")'''
    js = f'''import OpenAI from "openai";
import fs from "node:fs";

const client = new OpenAI({{ baseURL: "{base}", apiKey: "{key}" }});
const speech = await client.audio.speech.create({{ model: "tts-1", voice: "alloy", input: "Hello!" }});
fs.writeFileSync("hello.mp3", Buffer.from(await speech.arrayBuffer()));'''
    curl = f"""curl {base}/audio/speech -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
  -d '{{"model": "tts-1", "voice": "alloy", "input": "Hello!"}}' -o hello.mp3"""
    return python, js, curl


def build(studio: Studio, demo: gr.Blocks) -> dict[str, Any]:
    key_set = studio.settings.api_key is not None
    key = "<your key>" if key_set else "anything"
    key_note = (
        "**API key: required.** Send it as `Authorization: Bearer <key>`."
        if key_set
        else "**API key: not required** (any value works; set `TTS_STUDIO_API_KEY` to require one)."
    )
    base = gr.Textbox(label="Base URL (paste into apps)", interactive=False, buttons=["copy"], elem_id="base-url")
    gr.Markdown(key_note, elem_id="key-status")
    python = gr.Code(language="python", label="Python (openai)", interactive=False, elem_id="snippet-python")
    js = gr.Code(language="javascript", label="JavaScript (openai)", interactive=False, elem_id="snippet-js")
    curl = gr.Code(language="shell", label="curl", interactive=False, elem_id="snippet-curl")
    notes = gr.Markdown(elem_id="setup-notes")

    def fill(request: gr.Request) -> tuple[str, str, str, str, str]:
        host = request.headers.get("host") or f"{studio.settings.host}:{studio.settings.port}"
        url = f"http://{host}/v1"
        port = studio.settings.wyoming_port
        wyoming = f"(Wyoming is on: port {port}.) " if port else "(Wyoming is off now.) "
        notes = NOTES.format(base=url, key="your key" if key_set else "any value", wyoming=wyoming)
        return (url, *snippets(url, key), notes)

    demo.load(fill, None, [base, python, js, curl, notes], queue=False)
    return {}
