"""The Voices tab: add (upload or record, trim, transcript, consent), preview, edit, delete, OpenAI names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from tts_studio.audio.decode import decode_audio
from tts_studio.config import OPENAI_VOICES
from tts_studio.ui.context import WHISPER, Studio, error_text

LANGUAGES = ["en", "de", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "sv", "tr", "zh", "ar", "hi"]


def _mapping_rows(studio: Studio) -> list[list[str]]:
    rows = []
    for entry in studio.voices.entries():
        if entry["kind"] == "openai":
            names = [voice.name if (voice := studio.voices.library.get(t)) else t for t in entry["maps_to"]]
            rows.append([entry["id"], " → ".join(names) or "-", entry["mapping_source"]])
    return rows


def build(studio: Studio, speak: dict[str, Any]) -> dict[str, Any]:
    with gr.Row():
        with gr.Column():
            gr.Markdown("### Add a voice\nUpload or record 5–30 s of clear speech. Trim it with the scissors.")
            clip = gr.Audio(
                sources=["upload", "microphone"],
                type="filepath",
                label="Reference audio",
                editable=True,
                elem_id="voice-audio",
            )
            name = gr.Textbox(label="Name", elem_id="voice-name")
            language = gr.Dropdown(
                LANGUAGES, value="en", label="Language", allow_custom_value=True, elem_id="voice-language"
            )
            transcript = gr.Textbox(
                label="Transcript (filled in automatically for English; edit freely)",
                lines=3,
                elem_id="voice-transcript",
            )
            transcribe = gr.Button("Transcribe", size="sm", elem_id="voice-transcribe")
            consent = gr.Checkbox(
                label="I am this speaker, or I have their consent to clone this voice.", elem_id="voice-consent"
            )
            save = gr.Button("Save voice", variant="primary", elem_id="voice-save")
            heard = gr.State("")  # Whisper's transcript, to tell an edited one from an automatic one
            status = gr.Textbox(label="Status", interactive=False, elem_id="voice-status")
        with gr.Column():
            gr.Markdown("### Your library")
            pick = gr.Dropdown(studio.library_choices(), label="Voice", elem_id="voice-pick")
            preview = gr.Audio(type="filepath", interactive=False, label="Preview", elem_id="voice-preview")
            rename = gr.Textbox(label="Name", elem_id="voice-rename")
            edit_transcript = gr.Textbox(label="Transcript", lines=3, elem_id="voice-edit-transcript")
            with gr.Row():
                update = gr.Button("Save changes", elem_id="voice-update")
                delete = gr.Button("Delete…", variant="stop", elem_id="voice-delete")
                confirm = gr.Button("Yes, delete it", variant="stop", interactive=False, elem_id="voice-delete-confirm")
            manage_status = gr.Textbox(label="Status", interactive=False, elem_id="voice-manage-status")
            gr.Markdown("### OpenAI voice names\nApps ask for `alloy`, `nova`…: choose what each one speaks with.")
            with gr.Row():
                map_name = gr.Dropdown(list(OPENAI_VOICES), value="alloy", label="OpenAI name", elem_id="map-name")
                map_voice = gr.Dropdown(studio.library_choices(), label="Speaks with", elem_id="map-voice")
            with gr.Row():
                assign = gr.Button("Assign", elem_id="map-assign")
                reset = gr.Button("Restore default", elem_id="map-reset")
            table = gr.Dataframe(
                _mapping_rows(studio), headers=["name", "speaks with", "set by"], interactive=False, elem_id="map-table"
            )

    def refreshed(*selected: str | None) -> tuple[Any, ...]:
        """New choices for every voice list (and the library selection, when one is given)."""
        lib = studio.library_choices()
        pick_update = gr.update(choices=lib, value=selected[0]) if selected else gr.update(choices=lib)
        return gr.update(choices=studio.voice_choices()), pick_update, gr.update(choices=lib), _mapping_rows(studio)

    lists = [speak["voice"], pick, map_voice, table]

    def fill_transcript(path: str | None, lang: str) -> tuple[Any, Any]:
        if not path or not lang.startswith("en"):
            return gr.skip(), gr.skip()
        try:
            audio = decode_audio(Path(path).read_bytes(), studio.voices.library.limits)
            text = studio.transcriber.transcribe(audio, lang).text
        except Exception as exc:
            return f"(could not transcribe: {error_text(exc)})", ""
        return text, text

    transcribe.click(fill_transcript, [clip, language], [transcript, heard], concurrency_id=WHISPER)
    clip.upload(fill_transcript, [clip, language], [transcript, heard], concurrency_id=WHISPER)

    def add(path: str | None, name_: str, lang: str, text: str, agreed: bool, auto: str) -> tuple[Any, ...]:
        if not path:
            return ("Add a recording or a file first.", *[gr.skip()] * 4)
        if not agreed:
            return ("Please confirm you have the speaker's consent.", *[gr.skip()] * 4)
        try:
            data = Path(path).read_bytes()
            unedited = bool(text) and text == auto
            voice = studio.voices.library.add(
                name_, data, Path(path).name, lang or "en", text or None, consent=True, transcript_is_auto=unedited
            )
        except Exception as exc:
            return (f"⚠ {error_text(exc)}", *[gr.skip()] * 4)
        return (f"Saved '{voice.name}' ({voice.duration:.1f} s).", *refreshed(voice.id))

    save.click(add, [clip, name, language, transcript, consent, heard], [status, *lists], api_name="add_voice")

    armed = gr.State(None)  # the voice "Delete…" was pressed for: its confirm button works only for it
    selected = gr.State(None)  # the library voice shown (Gradio 6.8 can send a stale dropdown value on blur)

    def select(voice_id: str | None, armed_id: str | None) -> tuple[Any, ...]:
        # Some Gradio 6 releases fire change again on blur: keep the confirm armed for the armed voice.
        confirming = gr.update(interactive=bool(voice_id) and voice_id == armed_id)
        voice = studio.voices.library.get(voice_id) if voice_id else None
        if voice is None:
            return None, "", "", confirming, None
        path = str(studio.voices.library.audio_path(voice.id))
        return path, voice.name, voice.transcript, confirming, voice.id

    pick.change(select, [pick, armed], [preview, rename, edit_transcript, confirm, selected])  # queued: see speak.py

    def edit(voice_id: str | None, name_: str, text: str) -> tuple[Any, ...]:
        if not voice_id:
            return ("Choose a voice first.", *[gr.skip()] * 4)
        try:
            studio.voices.library.update(voice_id, name=name_, transcript=text)
        except Exception as exc:
            return (f"⚠ {error_text(exc)}", *[gr.skip()] * 4)
        return ("Saved.", *refreshed(voice_id))

    update.click(edit, [pick, rename, edit_transcript], [manage_status, *lists], api_name="edit_voice")
    delete.click(lambda v: (v, gr.update(interactive=bool(v))), selected, [armed, confirm])

    def remove(picked: str | None, armed_id: str | None) -> tuple[Any, ...]:
        try:
            voice = studio.voices.delete_voice(armed_id or picked or "")
        except Exception as exc:
            return (f"⚠ {error_text(exc)}", gr.update(interactive=False), None, *[gr.skip()] * 4)
        return (f"Deleted '{voice.name}'.", gr.update(interactive=False), None, *refreshed(None))

    confirm.click(remove, [pick, armed], [manage_status, confirm, armed, *lists], api_name="delete_voice")

    def mapped(openai_name: str, voice_id: str | None) -> tuple[Any, ...]:
        try:
            studio.voices.assign(openai_name, voice_id)
        except Exception as exc:
            return (f"⚠ {error_text(exc)}", *[gr.skip()] * 4)
        return ("Mapping saved.", *refreshed())

    assign.click(mapped, [map_name, map_voice], [manage_status, *lists], api_name="assign_voice")
    reset.click(lambda n: mapped(n, None), map_name, [manage_status, *lists])
    return {"refresh": refreshed, "lists": lists}
