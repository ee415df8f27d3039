"""Voice resolution: library voices, engine voices and the 13 OpenAI names, for any engine."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tts_studio.config import OPENAI_VOICES
from tts_studio.engines.base import EngineInfo, VoiceReference
from tts_studio.errors import InvalidRequest, NotFound
from tts_studio.services.file_watch import WatchedJson
from tts_studio.services.library import Voice, VoiceLibrary, atomic_write_json


@dataclass(frozen=True)
class ResolvedVoice:
    """An engine voice name, plus the reference audio when the voice is cloned."""

    name: str
    reference: VoiceReference | None = None


class VoiceMap:
    """OpenAI voice name -> candidate voices (first one the engine can speak wins).

    Layers, later wins: the bundled default file, the user's file (edited through the API/UI; read again
    when another process rewrote it), and the `voice_map` setting (environment).
    """

    def __init__(self, default_file: Path | None, user_file: Path, fixed: Mapping[str, str]) -> None:
        self._default = self._read(default_file)
        self._user_file = user_file
        self._user: WatchedJson[dict[str, list[str]]] = WatchedJson(user_file, self._parse, dict)
        self._fixed = {name: [target] for name, target in fixed.items()}
        self._lock = threading.Lock()

    @staticmethod
    def _parse(data: Any) -> dict[str, list[str]]:
        return {k: [v] if isinstance(v, str) else list(v) for k, v in data.items() if not k.startswith("_")}

    @classmethod
    def _read(cls, path: Path | None) -> dict[str, list[str]]:
        if path is None or not path.exists():
            return {}
        return cls._parse(json.loads(path.read_text(encoding="utf-8")))

    def get(self, name: str) -> list[str]:
        return self._fixed.get(name) or self._user.current().get(name) or self._default.get(name) or []

    def default(self, name: str) -> list[str]:
        """The bundled candidates: the fallback when the chosen voice does not fit an engine."""
        return self._default.get(name, [])

    def source(self, name: str) -> str:
        return "settings" if name in self._fixed else "user" if name in self._user.current() else "default"

    def set(self, name: str, targets: list[str]) -> None:
        with self._lock:
            self._write({**self._user.current(), name: list(targets)})

    def reset(self, name: str) -> None:
        with self._lock:
            self._write({k: v for k, v in self._user.current().items() if k != name})

    def _write(self, updated: dict[str, list[str]]) -> None:
        """Replace the user file (from the freshest copy: another process may have written it)."""
        self._user_file.parent.mkdir(parents=True, exist_ok=True)
        self._user.written(updated, atomic_write_json(self._user_file, updated))


class VoiceCatalog:
    """Everything a `voice` field can name, and which engines can speak it."""

    def __init__(
        self,
        engines: Mapping[str, EngineInfo],
        library: VoiceLibrary,
        mapping: VoiceMap,
        cloning_ready: Mapping[str, Callable[[], bool]] | None = None,
    ) -> None:
        self._engines = dict(engines)
        self.library = library
        self.mapping = mapping
        # engines whose cloning depends on something the user must provide (gated weights: a token); until
        # then library voices do not list them (a request still reaches them and says what to do)
        self._cloning_ready = dict(cloning_ready or {})

    def set_engine(self, info: EngineInfo) -> None:
        """Replace what an installed engine can speak (its voices changed)."""
        self._engines[info.id] = info

    # -- what engines can do ---------------------------------------------------------------
    def _builtin_engines(self, name: str) -> list[str]:
        return [eid for eid, info in self._engines.items() if name in info.voices]

    def _cloning_engines(self) -> list[str]:
        ready = {eid: check() for eid, check in self._cloning_ready.items()}
        return [eid for eid, info in self._engines.items() if info.cloning and ready.get(eid, True)]

    # -- listing ---------------------------------------------------------------------------
    def _library_json(self, voice: Voice) -> dict[str, Any]:
        return {
            "id": voice.id,
            "name": voice.name,
            "object": "audio.voice",
            "type": "audio_sample",
            "kind": "bundled" if voice.read_only else "custom",
            "engines": self._cloning_engines(),
            "language": voice.language,
            "transcript": voice.transcript,
            "transcript_source": voice.transcript_source,
            "duration": voice.duration,
            "created_at": voice.created_at,
            "consent": voice.consent,
            "preview_url": f"/v1/audio/voices/{voice.id}/audio",
        }

    def _openai_json(self, name: str) -> dict[str, Any]:
        engines = [eid for eid, info in self._engines.items() if self._speakable(name, info)]
        return {
            "id": name,
            "name": name,
            "object": "audio.voice",
            "kind": "openai",
            "engines": engines,
            "maps_to": self.mapping.get(name),
            "mapping_source": self.mapping.source(name),
        }

    def _speakable(self, voice: str, info: EngineInfo) -> bool:
        try:
            self.resolve(voice, info)
        except InvalidRequest:
            return False
        return True

    def entries(self, include_unspeakable: bool = False) -> list[dict[str, Any]]:
        """Every voice a client may pick: by default only those an installed engine can speak; with
        `include_unspeakable`, all of them, each marked `speakable` with the `reason` when it is not."""
        entries = [self._library_json(v) for v in self.library.all()]
        seen = {e["id"] for e in entries}
        for info in self._engines.values():
            for name in info.voices:
                if name not in seen:
                    seen.add(name)
                    entries.append(
                        {
                            "id": name,
                            "name": name,
                            "object": "audio.voice",
                            "kind": "builtin",
                            "engines": self._builtin_engines(name),
                            "language": info.languages[0],
                        }
                    )
        entries.extend(self._openai_json(name) for name in OPENAI_VOICES if name not in seen)
        waiting = [eid for eid, check in self._cloning_ready.items() if eid in self._engines and not check()]
        for entry in entries:
            entry["speakable"] = bool(entry["engines"])
            if not entry["speakable"]:
                entry["reason"] = (
                    "No installed engine can speak it: cloned voices need a cloning engine "
                    "(pip install 'tts-studio[chatterbox]' or 'tts-studio[voxcpm]')."
                )
                if waiting and entry["kind"] in ("bundled", "custom"):
                    entry["reason"] = (
                        f"{', '.join(waiting)} can clone it once it may download its gated weights: accept their "
                        "terms on the hub and save a Hugging Face token on the Models tab."
                    )
        return entries if include_unspeakable else [e for e in entries if e["speakable"]]

    def entry(self, voice_id: str) -> dict[str, Any]:
        for entry in self.entries(include_unspeakable=True):
            if entry["id"] == voice_id:
                return entry
        raise NotFound(f"The voice '{voice_id}' does not exist.", param="voice_id", code="voice_not_found")

    # -- resolution ------------------------------------------------------------------------
    def _library_voice(self, voice: Voice, info: EngineInfo) -> ResolvedVoice:
        if not info.cloning:
            raise self._cannot(voice, info)
        return ResolvedVoice(voice.id, self.library.reference(voice.id))

    def _target(self, ref: str, info: EngineInfo) -> ResolvedVoice | None:
        """An OpenAI-name target (library id or name, or engine voice), if this engine can speak it."""
        if ref in info.voices:
            return ResolvedVoice(ref)
        voice = self.library.find(ref)
        if voice is not None and info.cloning:
            return ResolvedVoice(voice.id, self.library.reference(voice.id))
        return None

    def _cannot(self, voice: Voice | str, info: EngineInfo) -> InvalidRequest:
        if isinstance(voice, Voice):
            shown, engines = f"'{voice.name}' ({voice.id})", self._cloning_engines()
        else:
            shown, engines = f"'{voice}'", self._builtin_engines(voice)
        reason = "" if info.cloning else ", which cannot clone voices"
        can = ", ".join(engines) or "none installed (a cloning engine such as chatterbox or voxcpm is needed)"
        return InvalidRequest(
            f"The voice {shown} cannot be spoken by the engine '{info.id}'{reason}. Engines that can: {can}.",
            param="voice",
            code="voice_not_supported",
        )

    def resolve(self, voice: str, info: EngineInfo) -> ResolvedVoice:
        """What engine `info` speaks for `voice`, or a 400 saying why it cannot. One order, always:
        library voice id -> OpenAI name -> engine voice -> unique library display name."""
        by_id = self.library.get(voice)
        if by_id is not None:
            return self._library_voice(by_id, info)
        if voice in OPENAI_VOICES:
            # The user's or settings' choice first, then the bundled defaults, then the engine's own
            # first voice: an OpenAI name always speaks on every engine.
            for target in [*self.mapping.get(voice), *self.mapping.default(voice)]:
                resolved = self._target(target, info)
                if resolved is not None:
                    return resolved
            if info.voices:
                return ResolvedVoice(info.voices[0])
            raise self._cannot(voice, info)
        if voice in info.voices:
            return ResolvedVoice(voice)
        if self._builtin_engines(voice):
            raise self._cannot(voice, info)
        by_name = self.library.find(voice)
        if by_name is not None:
            return self._library_voice(by_name, info)
        known = ", ".join(e["id"] for e in self.entries()[:20])
        raise InvalidRequest(f"Unknown voice '{voice}'. Known voices include: {known}.", param="voice")

    def delete_voice(self, voice_id: str) -> Voice:
        """Delete a library voice; OpenAI names the user had pointed at it go back to their default."""
        voice = self.library.delete(voice_id)
        for name in OPENAI_VOICES:
            if self.mapping.source(name) == "user" and voice_id in self.mapping.get(name):
                self.mapping.reset(name)
        return voice

    def assign(self, openai_name: str, voice: str | None) -> dict[str, Any]:
        """Map an OpenAI voice name to a voice (or back to the default with None)."""
        if openai_name not in OPENAI_VOICES:
            raise NotFound(f"'{openai_name}' is not an OpenAI voice name.", param="name", code="voice_not_found")
        if voice is None:
            self.mapping.reset(openai_name)
        else:
            target = self.library.find(voice)
            if target is None and not self._builtin_engines(voice):
                raise InvalidRequest(f"Unknown voice '{voice}'.", param="voice")
            self.mapping.set(openai_name, [target.id if target else voice])
        return self._openai_json(openai_name)
