"""The Convert tab: upload or record speech, pick a voice, hear it re-voiced (same words, same timing) and
download it. One admitted speech job over a ConversionOrder, as POST /v1/audio/voice-conversion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import gradio as gr

from tts_studio.services.conversion import INSTALL_HINT, ConversionOrder
from tts_studio.ui.context import Studio, error_text
from tts_studio.ui.speak import FILE_FORMATS


def _converters(studio: Studio) -> list[str]:
    return [e for e in studio.manager.engine_ids if studio.manager.info(e).converts_audio]


def _voice_choices(studio: Studio) -> list[tuple[str, str]]:
    """Library voices (yours, then bundled) and the OpenAI names that map to one."""
    choices = studio.library_choices()
    for entry in studio.voices.entries(include_unspeakable=True):
        maps_to = entry.get("maps_to") if entry["kind"] == "openai" else None
        target = studio.voices.library.get(maps_to[0]) if maps_to else None
        if target is not None:
            choices.append((f"{entry['id']} → {target.name} (OpenAI name)", entry["id"]))
    return choices


def _status(studio: Studio) -> str:
    installed = [e for e in _converters(studio) if studio.manager.installed(e)]
    if installed:
        return "Re-voice a recording into a library voice: the words and timing stay, the voice changes."
    return f"**Not installed.** {INSTALL_HINT}"


def build(studio: Studio) -> dict[str, Any]:
    """Lay out the tab; returns the voice list other tabs refresh and its refresher."""
    converters = _converters(studio)
    default_model = studio.settings.voice_conversion_model
    voices = _voice_choices(studio)
    with gr.Row():
        with gr.Column(scale=3):
            gr.Markdown(_status(studio), elem_id="convert-status")
            source = gr.Audio(
                sources=["upload", "microphone"], type="filepath", label="Recording", elem_id="convert-source"
            )
            with gr.Row():
                voice = gr.Dropdown(
                    voices, value=voices[0][1] if voices else None, label="Into voice", elem_id="convert-voice"
                )
                model = gr.Dropdown(
                    converters,
                    value=default_model if default_model in converters else next(iter(converters), None),
                    label="Model",
                    elem_id="convert-model",
                )
                fmt = gr.Dropdown(FILE_FORMATS, value="wav", label="Format", elem_id="convert-format")
            run = gr.Button("Convert", variant="primary", elem_id="convert-btn")
        with gr.Column(scale=2):
            result = gr.Audio(label="Converted", type="filepath", interactive=False, elem_id="convert-audio")
            info = gr.Markdown("", elem_id="convert-info")

    async def convert(recording: str | None, voice_: str | None, model_: str | None, fmt_: str) -> tuple[Any, str]:
        if not recording:
            return None, "Upload or record something to convert first."
        if not voice_:
            return None, "Pick a voice to convert into (add one on the Voices tab)."
        try:
            data = await anyio.to_thread.run_sync(Path(recording).read_bytes)
            order = ConversionOrder(data, voice_, model_ or None)
            audio, job = await studio.jobs.speak_all(order, fmt_)
            seconds = job.progress.audio_seconds
            entry = await anyio.to_thread.run_sync(  # an fsync'd write: never on the event loop
                studio.history.add, audio, fmt_, "(voice conversion)", voice_, job.engine_id or "", seconds
            )
            return str(studio.history.path(entry.id)), f"{seconds:.1f} s converted into {job.voice} ({job.engine_id})"
        except Exception as exc:
            return None, f"⚠ {error_text(exc)}"

    run.click(convert, [source, voice, model, fmt], [result, info], api_name="convert")

    def refresh() -> Any:
        fresh = _voice_choices(studio)
        return gr.update(choices=fresh)

    return {"refresh": refresh, "outputs": [voice]}
