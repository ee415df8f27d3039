"""Voice resolution: OpenAI names and engine voices to what an engine can speak."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tts_studio.config import OPENAI_VOICES
from tts_studio.engines.base import EngineInfo
from tts_studio.errors import InvalidRequest


@dataclass(frozen=True)
class VoiceEntry:
    """A voice as listed by /v1/audio/voices."""

    id: str
    name: str
    engines: tuple[str, ...]
    kind: str  # "builtin" (ships with an engine) or "openai" (an OpenAI name mapped to another voice)
    maps_to: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "object": "audio.voice",
            "type": self.kind,
            "engines": list(self.engines),
            "maps_to": self.maps_to,
        }


class VoiceCatalog:
    """Engine voices plus the configurable mapping of the 13 OpenAI voice names."""

    def __init__(self, engines: Mapping[str, EngineInfo], voice_map: Mapping[str, str]) -> None:
        self._engines = dict(engines)
        self._voice_map = dict(voice_map)

    def _builtin_engines(self, voice: str) -> tuple[str, ...]:
        return tuple(eid for eid, info in self._engines.items() if voice in info.voices)

    def list(self) -> list[VoiceEntry]:
        entries: dict[str, VoiceEntry] = {}
        for info in self._engines.values():
            for voice in info.voices:
                entries.setdefault(voice, VoiceEntry(voice, voice, self._builtin_engines(voice), "builtin"))
        for name in OPENAI_VOICES:
            target = self._voice_map.get(name, name)
            if name not in entries:
                entries[name] = VoiceEntry(name, name, self._builtin_engines(target), "openai", target)
        return list(entries.values())

    def get(self, voice_id: str) -> VoiceEntry | None:
        return next((v for v in self.list() if v.id == voice_id), None)

    def resolve(self, voice: str, info: EngineInfo) -> str:
        """The engine voice to use for `voice` on the engine `info`, or a 400 that says why not."""
        target = voice if voice in info.voices else self._voice_map.get(voice, voice)
        if target in info.voices:
            return target
        known = self.get(voice)
        if known is None:
            names = ", ".join(v.id for v in self.list())
            raise InvalidRequest(f"Unknown voice '{voice}'. Available voices: {names}.", param="voice")
        engines = ", ".join(self._builtin_engines(target)) or "none installed"
        raise InvalidRequest(
            f"The voice '{voice}' cannot be used with the engine '{info.id}' (engines that can: {engines}).",
            param="voice",
        )
