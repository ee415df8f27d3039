"""What every tab needs: the shared services, and the choices the dropdowns show."""

from __future__ import annotations

from tts_studio.errors import StudioError
from tts_studio.studio import Services

WHISPER = "whisper"  # transcript suggestions share one Gradio worker (engines are queued by the manager)


class Studio(Services):
    """The shared services, plus the choices the UI's dropdowns show."""

    def voice_choices(self) -> list[tuple[str, str]]:
        """(label, value) for every voice: yours first, then bundled, engine voices and OpenAI names."""
        labels = {"custom": "your voice", "bundled": "bundled clip", "builtin": "engine voice"}
        choices = []
        for entry in self.voices.entries():
            if entry["kind"] == "openai":
                target = self.voices.library.get(entry["maps_to"][0]) if entry["maps_to"] else None
                shown = target.name if target else (entry["maps_to"] or ["?"])[0]
                choices.append((f"{entry['id']} → {shown} (OpenAI name)", entry["id"]))
            else:
                choices.append((f"{entry['name']} ({labels[entry['kind']]})", entry["id"]))
        return choices

    def library_choices(self) -> list[tuple[str, str]]:
        return [(f"{v.name}{' (bundled)' if v.read_only else ''}", v.id) for v in self.voices.library.all()]

    def model_choices(self) -> list[tuple[str, str]]:
        return [
            (f"{model_id} → {engine_id}" if model_id != engine_id else self.manager.info(engine_id).name, model_id)
            for model_id, engine_id in self.speech.served_models()
        ]

    def engine_of(self, model: str) -> str | None:
        try:
            return self.speech.resolve_model(model)[0]
        except StudioError:
            return None

    def history_choices(self) -> list[tuple[str, str]]:
        return [(e.label, e.id) for e in self.history.entries()]


def error_text(exc: BaseException) -> str:
    """A message for the page: ours as they are, anything else without internals."""
    return exc.message if isinstance(exc, StudioError) else "Something went wrong; see the server log."
