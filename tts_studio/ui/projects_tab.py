"""The Projects tab: paste or import a script (txt, md, epub), cast its speakers, edit the dictionary, render
with progress and ETA, listen to single lines, regenerate them, review flagged takes, approve, export.
Everything goes through ProjectService, as the /v1/projects routes do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from tts_studio.projects.dictionary import Entry
from tts_studio.projects.export import AUDIO_FORMATS, PRESETS, TEXT_FORMATS
from tts_studio.projects.importing import script_from_file
from tts_studio.projects.script import NARRATOR
from tts_studio.projects.store import wav_bytes
from tts_studio.ui.context import Studio, error_text

EXAMPLE = """# Chapter One
The morning was quiet in the valley.
Alice: Good morning, Bob. [pause 800ms] Did you sleep well?
Bob: Like a log, thank you.
"""
COLUMNS = ["line", "speaker", "status", "WER", "text"]


def _cast_text(voices: dict[str, str], speakers: list[str]) -> str:
    return "\n".join(f"{s}: {voices.get(s) or voices.get(NARRATOR) or 'alloy'}" for s in speakers)


def _parse_cast(text: str) -> dict[str, str]:
    cast = {}
    for line in (text or "").splitlines():
        speaker, _, voice = line.partition(":")
        if speaker.strip() and voice.strip():
            cast[speaker.strip()] = voice.strip()
    return cast


def _parse_dictionary(text: str) -> list[Entry]:
    entries = []
    for line in (text or "").splitlines():
        term, _, say = line.partition("=")
        if term.strip() and say.strip():
            entries.append(Entry(term=term.strip(), say=say.strip()))
    return entries


def _dictionary_text(entries: list[dict[str, Any]]) -> str:
    return "\n".join(f"{e['term']} = {e['say']}" for e in entries)


def build(studio: Studio) -> None:
    service = studio.projects

    def _scratch(project_id: str) -> Path:
        """Files the page plays or downloads (overwritten each time, so they do not pile up)."""
        folder = studio.settings.cache_dir / "ui" / project_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def choices() -> list[tuple[str, str]]:
        return [(f"{p.data.name} ({p.data.status})", p.id) for p in service.store.all()]

    with gr.Row():
        picker = gr.Dropdown(choices(), label="Project", elem_id="project-pick", scale=3)
        refresh = gr.Button("↻", elem_id="project-refresh", scale=0, min_width=40)
    with gr.Accordion("New project", open=not choices(), elem_id="project-new"):
        name = gr.Textbox(label="Name", elem_id="project-name", value="My project")
        script = gr.Textbox(
            label="Script (markdown: # Chapter, Name: line, [pause 1s])",
            lines=10,
            value=EXAMPLE,
            elem_id="project-script",
        )
        upload = gr.File(
            label="Import .txt, .md or .epub",
            file_types=[".txt", ".md", ".epub"],
            type="filepath",
            elem_id="project-import",
        )
        create = gr.Button("Create project", variant="primary", elem_id="project-create")
    with gr.Row():
        with gr.Column(scale=2):
            cast = gr.Textbox(label="Cast (Speaker: voice)", lines=4, elem_id="project-cast")
            model = gr.Dropdown(studio.model_choices(), value="tts-1", label="Model", elem_id="project-model")
            dictionary = gr.Textbox(label="Pronunciations (term = say)", lines=3, elem_id="project-dictionary")
            save = gr.Button("Save cast and dictionary", elem_id="project-save")
            with gr.Row():
                render = gr.Button("Render", variant="primary", elem_id="project-render")
                cancel = gr.Button("Cancel", variant="stop", elem_id="project-cancel")
            status = gr.Markdown("", elem_id="project-status")
        with gr.Column(scale=3):
            table = gr.Dataframe(headers=COLUMNS, interactive=False, elem_id="project-lines", wrap=True)
            line = gr.Dropdown([], label="Line (flagged first)", elem_id="project-line")
            review = gr.Markdown("", elem_id="project-review")
            take = gr.Audio(label="Take", type="filepath", interactive=False, elem_id="project-take")
            with gr.Row():
                regenerate = gr.Button("Regenerate line", elem_id="project-regenerate")
                approve = gr.Button("Approve take", elem_id="project-approve")
            with gr.Row():
                fmt = gr.Dropdown(
                    list(AUDIO_FORMATS + TEXT_FORMATS), value="m4b", label="Export", elem_id="project-format"
                )
                preset = gr.Dropdown([*PRESETS, "none"], value="audiobook", label="Loudness", elem_id="project-preset")
            export = gr.Button("Export", elem_id="project-export")
            exported = gr.File(label="Download", elem_id="project-file")
    timer = gr.Timer(1.0, active=False)

    def show(project_id: str | None) -> tuple[Any, ...]:
        if not project_id:
            return "", gr.update(), "", "", [], gr.update(choices=[], value=None), gr.Timer(active=False)
        view = service.view(service.store.get(project_id))
        rows: list[list[str]] = []
        flagged: list[tuple[str, str]] = []
        others: list[tuple[str, str]] = []
        for chapter in view["chapters"]:
            for item in chapter["lines"]:
                wer = "" if item["wer"] is None else f"{item['wer']:.0%}"
                rows.append([item["id"], item["speaker"], item["status"], wer, item["text"]])
                (flagged if item["flagged"] else others).append((f"{item['id']} · {item['status']}", item["id"]))
        progress = view["progress"]
        eta = f" · about {progress['eta_seconds']:.0f} s left" if progress["eta_seconds"] is not None else ""
        error = f" · ⚠ {view['error']}" if view["error"] else ""
        warnings = "".join(f"\n- {w}" for w in view["warnings"])
        bar = f"<progress value='{progress['done']}' max='{max(1, progress['total'])}'></progress>\n\n"
        text = f"{bar}**{view['status']}** · {progress['done']}/{progress['total']} lines{eta}{error}{warnings}"
        active = view["status"] in ("queued", "rendering")
        return (
            _cast_text(view["voices"], view["speakers"]),
            view["model"],
            _dictionary_text(view["dictionary"]),
            text,
            rows,
            gr.update(choices=flagged + others),
            gr.Timer(active=active),
        )

    shown = [cast, model, dictionary, status, table, line, timer]
    picker.change(show, picker, shown)
    timer.tick(lambda p: show(p)[3:], picker, [status, table, line, timer])
    refresh.click(lambda: gr.update(choices=choices()), None, picker)

    def load_file(path: str | None) -> Any:
        if not path:
            return gr.update()
        try:
            return script_from_file(Path(path).name, Path(path).read_bytes())
        except Exception as exc:
            gr.Warning(error_text(exc))
            return gr.update()

    upload.change(load_file, upload, script)

    def make(name_: str, script_: str) -> tuple[Any, str]:
        try:
            project = service.create(name_ or "Untitled", script_ or "", {NARRATOR: "alloy"}, "tts-1", [])
        except Exception as exc:
            return gr.update(), f"⚠ {error_text(exc)}"
        return gr.update(choices=choices(), value=project.id), ""

    create.click(make, [name, script], [picker, status])

    def save_settings(project_id: str | None, cast_: str, model_: str, dictionary_: str) -> str:
        if not project_id:
            return "Choose a project first."
        try:
            changes = {
                "voices": _parse_cast(cast_),
                "model": model_ or "tts-1",
                "dictionary": _parse_dictionary(dictionary_),
            }
            service.update(project_id, changes)
        except Exception as exc:
            return f"⚠ {error_text(exc)}"
        return "Saved."

    save.click(save_settings, [picker, cast, model, dictionary], status)

    def start(project_id: str | None, lines: list[str] | None = None) -> tuple[Any, ...]:
        if not project_id:
            return "Choose a project first.", gr.Timer(active=False)
        try:
            service.renderer.submit(project_id, lines)
        except Exception as exc:
            return f"⚠ {error_text(exc)}", gr.Timer(active=False)
        return "**queued**", gr.Timer(active=True)

    render.click(start, picker, [status, timer])
    regenerate.click(lambda p, item: start(p, [item] if item else None), [picker, line], [status, timer])
    cancel.click(lambda p: service.renderer.cancel(p) and "cancelled" if p else "", picker, status)

    def pick_line(project_id: str | None, line_id: str | None) -> tuple[str, Any]:
        if not project_id or not line_id:
            return "", None
        view = service.view(service.store.get(project_id))
        item = next(i for c in view["chapters"] for i in c["lines"] if i["id"] == line_id)
        text = f"**Text:** {item['text']}\n\n**Whisper heard:** {item['transcript'] or '—'}"
        if item["note"]:
            text += f"\n\n{item['note']}"
        project = service.store.get(project_id)
        loaded = project.load_take(service.keys(project)[line_id])
        if loaded is None:
            return text, None
        path = _scratch(project_id) / f"{line_id}.wav"
        path.write_bytes(wav_bytes(loaded.samples))
        return text, str(path)

    line.change(pick_line, [picker, line], [review, take])

    def approve_line(project_id: str | None, line_id: str | None) -> str:
        if not project_id or not line_id:
            return "Choose a line first."
        try:
            service.approve(project_id, line_id)
        except Exception as exc:
            return f"⚠ {error_text(exc)}"
        return f"{line_id} approved."

    approve.click(approve_line, [picker, line], review)

    def export_file(project_id: str | None, fmt_: str, preset_: str) -> tuple[Any, str]:
        if not project_id:
            return None, "Choose a project first."
        try:
            data = service.export(project_id, fmt_, None, preset_)
        except Exception as exc:
            return None, f"⚠ {error_text(exc)}"
        name_ = service.store.get(project_id).data.name
        safe = "".join(ch if ch.isalnum() or ch in " -_" else "_" for ch in name_).strip() or "project"
        path = _scratch(project_id) / f"{safe}.{ {'opus': 'ogg'}.get(fmt_, fmt_) }"
        path.write_bytes(data)
        return str(path), f"Exported {fmt_}."

    export.click(export_file, [picker, fmt, preset], [exported, status])
