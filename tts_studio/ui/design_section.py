"""Speak's "Design a voice" section: describe a voice, generate candidates, pick one, keep it as a library voice
(the same service as `POST /v1/audio/voices/design`)."""

from __future__ import annotations

import io
from typing import Any

import gradio as gr
import soundfile as sf  # type: ignore[import-untyped]  # no stubs; decodes the candidates' WAV

from tts_studio.errors import StudioError
from tts_studio.services.voice_design import DEFAULT_TEXT, MAX_CANDIDATES, Candidate, VoiceDesigner
from tts_studio.ui.context import Studio, error_text


def _playable(candidate: Candidate) -> tuple[int, Any]:
    samples, rate = sf.read(io.BytesIO(candidate.audio), dtype="int16")
    return int(rate), samples


def build(studio: Studio, voice: gr.Dropdown) -> None:
    """Lay out the section; a kept voice becomes the Speak tab's selected `voice`."""
    designer = VoiceDesigner(studio.jobs, studio.voices.library, studio.designs)
    with gr.Accordion("Design a voice", open=False, elem_id="design"):
        ready = designer.design_engines()
        gr.Markdown(
            "Describe a voice in words; each candidate reads the sample text. Keep the one you like: it becomes "
            "a voice of yours that every cloning engine speaks with."
            + ("" if ready else " (Needs VoxCPM2: install it on the Models tab.)")
        )
        instructions = gr.Textbox(
            label="Description", placeholder="A warm, low female voice, speaking slowly", elem_id="design-instructions"
        )
        text = gr.Textbox(label="Sample text", value=DEFAULT_TEXT, lines=2, elem_id="design-text")
        count = gr.Slider(1, MAX_CANDIDATES, value=2, step=1, label="Candidates", elem_id="design-n")
        generate = gr.Button("Generate candidates", elem_id="design-generate")
        players = [
            gr.Audio(label=f"Candidate {i + 1}", interactive=False, visible=False, elem_id=f"design-candidate-{i + 1}")
            for i in range(MAX_CANDIDATES)
        ]
        with gr.Row():
            pick = gr.Radio([], label="Keep", elem_id="design-pick")
            name = gr.Textbox(label="Voice name (optional)", elem_id="design-name")
        save = gr.Button("Save as a voice", variant="primary", elem_id="design-save")
        status = gr.Textbox(label="Status", interactive=False, elem_id="design-status")

    async def run(described: str, sample: str, n: float) -> list[Any]:
        try:
            made = await designer.design(described or "", sample, int(n))
        except StudioError as exc:
            return [*[gr.update(visible=False)] * MAX_CANDIDATES, gr.update(choices=[], value=None), f"⚠ {exc.message}"]
        shown = [gr.update(value=_playable(c), visible=True) for c in made]
        shown += [gr.update(value=None, visible=False)] * (MAX_CANDIDATES - len(made))
        choices = [(f"Candidate {i + 1}", c.id) for i, c in enumerate(made)]
        message = f"{len(made)} candidate(s) from {made[0].engine_id}: listen, pick one, save it."
        return [*shown, gr.update(choices=choices, value=made[0].id), message]

    def keep(candidate_id: str | None, chosen: str) -> tuple[Any, str]:
        if not candidate_id:
            return gr.update(), "⚠ Generate candidates, then pick one."
        try:
            kept = designer.save(candidate_id, chosen or None)
        except Exception as exc:
            return gr.update(), f"⚠ {error_text(exc)}"
        return gr.update(choices=studio.voice_choices(), value=kept.id), f"Saved '{kept.name}': it is selected above."

    generate.click(run, [instructions, text, count], [*players, pick, status], api_name="design_voice")
    save.click(keep, [pick, name], [voice, status], api_name="keep_designed_voice")
