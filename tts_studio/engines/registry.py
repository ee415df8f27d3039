"""The declarative engine registry: engine id -> what it is and how to build it, without importing any engine
package (engine modules import theirs in load())."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from tts_studio.config import Settings
from tts_studio.engines.base import EngineInfo, TTSEngine


@dataclass(frozen=True)
class EngineSpec:
    """An engine's static info, a factory taking Settings, and the packages it needs."""

    info: EngineInfo
    factory: Callable[[Settings], TTSEngine]
    install_hint: str = ""
    requires: tuple[str, ...] = ()  # importable module names

    @property
    def installed(self) -> bool:
        return all(importlib.util.find_spec(module) is not None for module in self.requires)


_CHATTERBOX = "pip install 'tts-studio[chatterbox]'"
_VOXCPM = "pip install 'tts-studio[voxcpm]'"
# One line per engine module: (module, install hint, modules it needs). Each module declares its engines in
# `ENGINES = {engine id: (EngineInfo, factory(settings))}` and imports its packages only in load().
ENGINE_MODULES = (
    ("tts_studio.engines.hibari_engine", "pip install hibari-tts", ("hibari",)),
    ("tts_studio.engines.chatterbox_engine", _CHATTERBOX, ("chatterbox",)),
    ("tts_studio.engines.voxcpm_engine", _VOXCPM, ("voxcpm",)),
)


def default_registry() -> dict[str, EngineSpec]:
    """Every engine TTS Studio knows, installed or not (engine modules import nothing heavy)."""
    registry: dict[str, EngineSpec] = {}
    for module_name, hint, requires in ENGINE_MODULES:
        module = importlib.import_module(module_name)
        for engine_id, (info, factory) in module.ENGINES.items():
            registry[engine_id] = EngineSpec(info, factory, hint, requires)
    return registry
