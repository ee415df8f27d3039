"""The Models tab's install section: one Install button per engine extra not installed here, the install's
steps and log as they come, Cancel; then it says to restart the studio (the launcher has no restart loop)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import gradio as gr

from tts_studio.errors import StudioError
from tts_studio.services.engine_installer import InstallStatus, extra_of
from tts_studio.ui.context import Studio


def missing_extras(studio: Studio) -> dict[str, list[str]]:
    """tts-studio extra -> the engines it would bring that are not installed here."""
    extras: dict[str, list[str]] = {}
    for engine_id in studio.manager.engine_ids:
        extra = extra_of(studio.manager.install_hint(engine_id))
        if extra is not None and not studio.manager.installed(engine_id):
            extras.setdefault(extra, []).append(engine_id)
    return extras


def status_text(status: InstallStatus) -> str:
    if status.state == "idle":
        return ""
    if status.running:
        steps = f"step {status.step} of {len(status.commands)}"
        return f"Installing tts-studio[{status.extra}]: {steps}, {status.lines} log lines…"
    mark = "✓" if status.state == "succeeded" else "⚠"
    return f"{mark} {status.message}"


def build(studio: Studio) -> None:
    extras = missing_extras(studio)
    installer = studio.installer
    with gr.Accordion("Install engines", open=bool(extras), elem_id="models-install"):
        if not extras:
            gr.Markdown("Every engine this studio knows is installed.")
            return
        brings = "; ".join(f"**{extra}**: {', '.join(engines)}" for extra, engines in extras.items())
        gr.Markdown(
            "Installs an engine into the studio's own environment (uv or pip, as the launcher does; CUDA torch "
            f"when `nvidia-smi` works). Downloads can be several GB. Restart the studio afterwards. {brings}."
        )
        with gr.Row():
            buttons = {extra: gr.Button(f"Install {extra}", elem_id=f"models-install-{extra}") for extra in extras}
            cancel = gr.Button("Cancel install", variant="stop", elem_id="models-install-cancel")
        state = gr.Markdown(status_text(installer.status()), elem_id="models-install-status")
        log = gr.Textbox(
            "\n".join(installer.status().log),
            label="Install log",
            lines=8,
            max_lines=20,
            interactive=False,
            autoscroll=True,
            elem_id="models-install-log",
        )

    def follow(extra: str) -> Generator[tuple[str, str], None, None]:
        engine_id = extras[extra][0]
        try:
            status = installer.start(engine_id, studio.manager.install_hint(engine_id))
        except StudioError as exc:
            yield f"⚠ {exc.message}", "\n".join(installer.status().log)
            return
        while True:
            yield status_text(status), "\n".join(status.log)
            if not status.running:
                return
            status = installer.wait(status.lines, timeout=1.0)

    def stop() -> tuple[str, str]:
        installer.cancel()
        status = installer.status()
        return status_text(status) or "No install is running.", "\n".join(status.log)

    def follower(extra: str) -> Any:
        def run() -> Generator[tuple[str, str], None, None]:
            yield from follow(extra)

        return run

    for extra, button in buttons.items():
        button.click(follower(extra), None, [state, log])
    cancel.click(stop, None, [state, log], queue=False)
