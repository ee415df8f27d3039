"""The declarative engine registry: engine id -> what it is and how to build it, without importing it."""

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


def _info(path: str) -> EngineInfo:
    module, _, attr = path.partition(":")
    info: EngineInfo = getattr(importlib.import_module(module), attr)
    return info


def _factory(path: str) -> Callable[[Settings], TTSEngine]:
    def build(settings: Settings) -> TTSEngine:
        module, _, attr = path.partition(":")
        engine: TTSEngine = getattr(importlib.import_module(module), attr)(settings)
        return engine

    return build


_CHATTERBOX = "pip install 'tts-studio[chatterbox]'"
_VOXCPM = "pip install 'tts-studio[voxcpm]'"
# engine id -> (engine module, install hint, required modules). Engine modules import their packages in load().
_ENGINES = {
    "hibari": ("tts_studio.engines.hibari_engine", "pip install hibari-tts", ("hibari",)),
    "chatterbox": ("tts_studio.engines.chatterbox_engine", _CHATTERBOX, ("chatterbox",)),
    "chatterbox-multilingual": ("tts_studio.engines.chatterbox_engine", _CHATTERBOX, ("chatterbox",)),
    "chatterbox-turbo": ("tts_studio.engines.chatterbox_engine", _CHATTERBOX, ("chatterbox",)),
    "voxcpm2": ("tts_studio.engines.voxcpm_engine", _VOXCPM, ("voxcpm",)),
    "voxcpm1.5": ("tts_studio.engines.voxcpm_engine", _VOXCPM, ("voxcpm",)),
}


def default_registry() -> dict[str, EngineSpec]:
    """Every engine TTS Studio knows, installed or not."""
    registry = {}
    for engine_id, (module, hint, requires) in _ENGINES.items():
        attr = engine_id.upper().replace("-", "_").replace(".", "_")
        registry[engine_id] = EngineSpec(
            _info(f"{module}:{attr}_INFO"), _factory(f"{module}:make_{attr.lower()}"), hint, requires
        )
    return registry
