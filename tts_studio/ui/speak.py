"""The Speak tab: text, voice, model, format, speed, engine parameters; generate, progress, history."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import gradio as gr

from tts_studio.audio.encode import FORMATS
from tts_studio.engines.base import ParamSpec
from tts_studio.services.render import Rendered, RenderProgress, render
from tts_studio.services.speech import SpeechOrder
from tts_studio.ui import design_section
from tts_studio.ui.context import Studio, error_text

FILE_FORMATS = [name for name, fmt in FORMATS.items() if fmt.playable_file]


def _all_params(studio: Studio) -> dict[str, ParamSpec]:
    """Every engine parameter any installed engine declares, by name (first declaration wins)."""
    found: dict[str, ParamSpec] = {}
    for engine_id in studio.manager.engine_ids:
        if studio.manager.installed(engine_id):
            for spec in studio.manager.info(engine_id).params:
                found.setdefault(spec.name, spec)
    return found


def _control(spec: ParamSpec, languages: list[str]) -> gr.components.Component:
    label = f"{spec.name} — {spec.description}" if spec.description else spec.name
    elem_id = f"param-{spec.name}"
    if spec.kind is bool:
        return gr.Checkbox(value=bool(spec.default), label=label, elem_id=elem_id, visible=False)
    if spec.name == "language":
        return gr.Dropdown(languages, value=spec.default, label=label, elem_id=elem_id, visible=False)
    if spec.kind is str:
        return gr.Textbox(value=spec.default or "", label=label, elem_id=elem_id, visible=False)
    return gr.Number(
        value=spec.default,
        label=label,
        minimum=spec.minimum,
        maximum=spec.maximum,
        precision=0 if spec.kind is int else None,
        elem_id=elem_id,
        visible=False,
    )


def build(studio: Studio) -> dict[str, Any]:
    """Lay out the tab; returns the components other tabs refresh."""
    params = _all_params(studio)
    languages = sorted({lang for e in studio.manager.engine_ids for lang in studio.manager.info(e).languages})
    with gr.Row():
        with gr.Column(scale=3):
            hint = "Type or paste anything; long texts are split and joined into one file."
            text = gr.Textbox(label="Text", lines=8, max_lines=30, elem_id="tts-text", placeholder=hint)
            with gr.Row():
                voice = gr.Dropdown(studio.voice_choices(), value="alloy", label="Voice", elem_id="voice")
                model = gr.Dropdown(studio.model_choices(), value="tts-1", label="Model", elem_id="model")
            with gr.Row():
                fmt = gr.Dropdown(FILE_FORMATS, value="mp3", label="Format", elem_id="format")
                speed = gr.Slider(0.25, 4.0, value=1.0, step=0.05, label="Speed", elem_id="speed")
            with gr.Accordion("Advanced", open=False, elem_id="advanced"):
                instructions = gr.Textbox(
                    label="Instructions (style; engines that support it)", visible=False, elem_id="instructions"
                )
                controls = {name: _control(spec, languages) for name, spec in params.items()}
            with gr.Row():
                generate = gr.Button("Generate", variant="primary", elem_id="gen-btn")
                cancel = gr.Button("Cancel", variant="stop", elem_id="cancel-btn")
            design_section.build(studio, voice)  # describe a voice, hear candidates, keep one
        with gr.Column(scale=2):
            audio = gr.Audio(
                label="Result", type="filepath", interactive=False, buttons=["download"], elem_id="tts-audio"
            )
            info = gr.Textbox(label="Status", interactive=False, lines=2, elem_id="gen-info")
            with gr.Accordion("History", open=True):
                history = gr.Dropdown(studio.history_choices(), label="Recent generations", elem_id="history-pick")
                replay = gr.Audio(
                    type="filepath", interactive=False, buttons=["download"], elem_id="history-audio", label="Replay"
                )
                forget = gr.Button("Delete from history", size="sm", elem_id="history-delete")

    names = list(controls)

    def show_params(model_id: str) -> list[Any]:
        engine_id = studio.engine_of(model_id)
        info = studio.manager.info(engine_id) if engine_id else None
        own = {p.name: p for p in info.params} if info else {}
        updates = [gr.update(visible=bool(info and info.instructions))]
        updates += [gr.update(visible=n in own, value=own[n].default if n in own else None) for n in names]
        return updates

    model.change(show_params, model, [instructions, *controls.values()], queue=False)

    def run(
        text_: str,
        voice_: str,
        model_: str,
        fmt_: str,
        speed_: float,
        instructions_: str,
        *values: Any,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio injects progress through this default)
    ) -> Generator[tuple[Any, str, Any], None, None]:
        engine_id = studio.engine_of(model_)
        own = {p.name for p in studio.manager.info(engine_id).params} if engine_id else set()
        extra = {n: v for n, v in zip(names, values, strict=True) if n in own and v not in (None, "")}
        order = SpeechOrder(
            model=model_ or "tts-1",
            input=text_ or "",
            voice=voice_ or "alloy",
            speed=float(speed_),
            instructions=instructions_ or None,
            extra=extra,
        )
        try:
            for step in render(studio.jobs, order, fmt_):
                if isinstance(step, RenderProgress):
                    progress(step.done / max(step.total, 1), desc=step.message)
                    continue
                assert isinstance(step, Rendered)
                entry = studio.history.add(step.audio, fmt_, text_, voice_, model_, step.seconds)
                speedup = step.seconds / max(step.elapsed, 1e-6)
                message = (
                    f"{step.seconds:.1f} s of audio in {step.elapsed:.2f} s ({speedup:.0f}× real time) · "
                    f"{step.engine_id} · {step.voice}"
                )
                choices = studio.history_choices()
                yield str(studio.history.path(entry.id)), message, gr.update(choices=choices, value=None)
        except Exception as exc:
            yield None, f"⚠ {error_text(exc)}", gr.update()

    event = generate.click(
        run,
        [text, voice, model, fmt, speed, instructions, *controls.values()],
        [audio, info, history],
        api_name="generate",
    )
    cancel.click(None, cancels=[event])

    def pick(entry_id: str | None) -> Any:
        return str(studio.history.path(entry_id)) if entry_id else None

    history.change(pick, history, replay)  # queued: Gradio 6.8 drops the /ui prefix from file URLs otherwise

    def delete(entry_id: str | None) -> tuple[Any, Any]:
        if entry_id:
            studio.history.delete(entry_id)
        return gr.update(choices=studio.history_choices(), value=None), None

    forget.click(delete, history, [history, replay])
    return {
        "voice": voice,
        "model": model,
        "show_params": show_params,
        "param_outputs": [instructions, *controls.values()],
    }
