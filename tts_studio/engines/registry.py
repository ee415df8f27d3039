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
    importer: Callable[[], object] | None = None  # imports them with side effects contained (pocket-tts)
    cloning_ready: Callable[[Settings], bool] | None = None  # False: cloning waits for the user (a token)
    remote: bool = False  # runs elsewhere (a Ray Serve deployment): no device, queue or weights here
    absent: bool = False  # not part of this deployment: unavailable, `install_hint` says how to add it

    @property
    def installed(self) -> bool:
        if self.absent:
            return False
        if self.remote:
            return True  # on the cluster's nodes, not necessarily here
        return all(importlib.util.find_spec(module) is not None for module in self.requires)

    def import_packages(self) -> None:
        """Import what the engine needs (ImportError when it is not installed)."""
        if self.importer is not None:
            self.importer()
            return
        for module in self.requires:
            importlib.import_module(module)


_CHATTERBOX = "pip install 'tts-studio[chatterbox]'"
_VOXCPM = "pip install 'tts-studio[voxcpm]'"
_POCKET = "pip install 'tts-studio[pocket]'"
# One line per engine module: (module, install hint, modules it needs). Each module declares its engines in
# `ENGINES = {engine id: (EngineInfo, factory(settings))}` and imports its packages only in load().
ENGINE_MODULES = (
    ("tts_studio.engines.hibari_engine", "pip install hibari-tts", ("hibari",)),
    ("tts_studio.engines.chatterbox_engine", _CHATTERBOX, ("chatterbox",)),
    ("tts_studio.engines.voxcpm_engine", _VOXCPM, ("voxcpm",)),
    ("tts_studio.engines.pocket_engine", _POCKET, ("pocket_tts",)),
    ("tts_studio.engines.chatterbox_vc_engine", _CHATTERBOX, ("chatterbox",)),
)


def default_registry() -> dict[str, EngineSpec]:
    """Every engine TTS Studio knows, installed or not (engine modules import nothing heavy)."""
    registry: dict[str, EngineSpec] = {}
    for module_name, hint, requires in ENGINE_MODULES:
        module = importlib.import_module(module_name)
        for engine_id, (info, factory) in module.ENGINES.items():
            registry[engine_id] = EngineSpec(
                info,
                factory,
                hint,
                requires,
                importer=getattr(module, "import_packages", None),
                cloning_ready=getattr(module, "cloning_ready", None),
            )
    return registry
