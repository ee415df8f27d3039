"""The Models tab: every engine, installed or not, downloaded or not, loaded or not; load, unload, download;
and speech to text (Whisper tiny.en, and the multilingual model the user may download)."""

from __future__ import annotations

import os
from typing import Any

import gradio as gr

from tts_studio.engines import hf_token
from tts_studio.engines.weights import weights_present
from tts_studio.ui import engine_install
from tts_studio.ui.context import Studio, error_text


def _memory() -> str:
    try:
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        text = f"server peak memory {rss:.0f} MiB"
    except ImportError:  # Windows
        text = f"server pid {os.getpid()}"
    import sys

    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            used = torch.cuda.memory_allocated() / 2**30
            total = torch.cuda.get_device_properties(0).total_memory / 2**30
            text += f" · GPU {used:.1f} / {total:.0f} GiB"
    return text


def rows(studio: Studio) -> list[list[str]]:
    status = studio.manager.status()
    table = []
    for engine_id in studio.manager.engine_ids:
        spec_info = studio.manager.info(engine_id)
        installed = studio.manager.installed(engine_id)
        state = status[engine_id]
        if spec_info.weights_repo is None:
            weights = "in the package"
        elif state["download"]:
            weights = f"downloading: {state['download']['files_done']}/{state['download']['files_total']} files"
        else:
            weights = "downloaded" if installed and weights_present(studio.settings, spec_info) else "not downloaded"
        install = "yes" if installed else f"no: {studio.manager.install_hint(engine_id)}"
        table.append(
            [
                engine_id,
                spec_info.name,
                install,
                weights,
                state["state"],
                state["device"] or "-",
                str(state["in_use"]),
                state["error"] or "",
            ]
        )
    return table


HEADERS = ["engine", "name", "installed", "weights", "state", "device", "in use", "last error"]


def whisper_text(studio: Studio) -> str:
    """Speech to text: which Whisper models are here and loaded."""
    models = studio.transcriber.status()["models"]
    english, multilingual = models["english"], models["multilingual"]
    loaded = " (loaded)" if english["loaded"] else ""
    text = f"**Speech to text**: {english['id']}{loaded} for English (in the package)"
    if multilingual["id"] is None:
        return text + "."
    if multilingual["present"]:
        loaded = " (loaded)" if multilingual["loaded"] else ""
        return text + f"; {multilingual['id']}{loaded} for every other language and for detection."
    return text + f"; other languages need {multilingual['id']}: not downloaded (the button below fetches it)."


def build(studio: Studio) -> dict[str, Any]:
    table = gr.Dataframe(rows(studio), headers=HEADERS, interactive=False, elem_id="models-table")
    memory = gr.Markdown(_memory(), elem_id="models-memory")
    whisper = gr.Markdown(whisper_text(studio), elem_id="models-whisper")
    with gr.Row():
        engine = gr.Dropdown(
            studio.manager.engine_ids, value=studio.manager.engine_ids[0], label="Engine", elem_id="models-engine"
        )
        idle = gr.Number(
            studio.settings.idle_unload_seconds, label="Unload after idle (s; <0 never)", elem_id="models-idle"
        )
    with gr.Row():
        load = gr.Button("Load", variant="primary", elem_id="models-load")
        unload = gr.Button("Unload", elem_id="models-unload")
        download = gr.Button("Download weights", elem_id="models-download")
        voices = gr.Button("Download embedded voices", elem_id="models-voices")
        whisper_download = gr.Button("Download multilingual Whisper", elem_id="models-whisper-download")
        refresh = gr.Button("Refresh", elem_id="models-refresh")
    status = gr.Textbox(label="Status", interactive=False, elem_id="models-status")
    with gr.Row():  # gated weights (pocket-tts cloning): the token is stored with the user's data, never shown back
        token = gr.Textbox(
            label="Hugging Face token (for gated weights; accept the model's terms on its hub page first)",
            type="password",
            elem_id="models-hf-token",
        )
        token_save = gr.Button("Save token", elem_id="models-hf-token-save")
    token_status = gr.Markdown(hf_token.status(studio.settings).describe(), elem_id="models-hf-token-status")
    engine_install.build(studio)  # an Install button per engine extra not installed here

    def view(message: str) -> tuple[Any, ...]:
        return rows(studio), _memory(), whisper_text(studio), message

    def do_load(engine_id: str, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008 (Gradio injects progress through this default)
        progress(0.1, desc=f"Loading {engine_id}…")
        try:
            studio.manager.acquire(engine_id).release()
        except Exception as exc:
            return view(f"⚠ {error_text(exc)}")
        return view(f"{engine_id} is loaded.")

    def do_unload(engine_id: str) -> tuple[Any, ...]:
        done = studio.manager.unload(engine_id)
        return view(f"{engine_id} unloaded." if done else f"{engine_id} is not loaded or is in use.")

    def do_download(engine_id: str, progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple[Any, ...]:  # noqa: B008 (Gradio injects progress)
        info = studio.manager.info(engine_id)
        if info.weights_repo is None:
            return view(f"{engine_id} ships its weights in its package.")
        try:
            path = studio.manager.download(engine_id, explicit=True)  # progress shows in the table
        except Exception as exc:
            return view(f"⚠ {error_text(exc)}")
        return view(f"{engine_id}: weights in {path}")

    def do_voices() -> tuple[Any, ...]:
        missing = studio.embedded_voices.missing()
        if not missing:
            return view(f"Every embedded voice is here: {', '.join(studio.embedded_voices.present())}.")
        try:
            fetched = studio.embedded_voices.download()
        except Exception as exc:
            return view(f"⚠ {error_text(exc)}")
        return view(f"Downloaded {', '.join(fetched)}: the OpenAI voice names now use them on the embedded engine.")

    def do_whisper(progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008 (Gradio injects progress)
        source = studio.transcriber.multilingual
        if source is None:
            return view("This studio transcribes English only.")
        if source.present():
            return view(f"{source.name} is here: every language transcribes.")
        progress(0, desc=f"Downloading {source.repo}…")

        def report(done: int, total: int) -> None:
            progress((done, total) if total else 0.0, desc=f"Downloading {source.repo}: files", unit="files")

        try:
            folder = source.download(report)
        except Exception as exc:
            return view(f"⚠ {error_text(exc)}")
        return view(f"{source.repo} is ready in {folder}: languages besides English now transcribe with it.")

    def set_idle(seconds: float) -> tuple[Any, ...]:
        studio.settings.idle_unload_seconds = float(seconds)
        return view(f"Engines now unload after {seconds:g} s idle." if seconds >= 0 else "Engines stay loaded.")

    def do_token(value: str) -> tuple[str, str]:
        try:
            saved = hf_token.save_token(studio.settings, value)
        except Exception as exc:
            return "", f"⚠ {error_text(exc)}"
        return "", saved.describe()  # the field is emptied: the token never goes back to the page

    outputs = [table, memory, whisper, status]
    token_save.click(do_token, token, [token, token_status])
    load.click(do_load, engine, outputs)  # the manager queues the device
    unload.click(do_unload, engine, outputs)
    voices.click(do_voices, None, outputs)
    whisper_download.click(do_whisper, None, outputs)
    download.click(do_download, engine, outputs)
    idle.submit(set_idle, idle, outputs)
    refresh.click(lambda: view(""), None, outputs, queue=False)
    return {"refresh": lambda: view(""), "outputs": outputs}
