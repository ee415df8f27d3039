"""The declarative engine registry: engine id -> how to build it, without importing it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from tts_studio.config import Settings
from tts_studio.engines.base import EngineInfo, TTSEngine


@dataclass(frozen=True)
class EngineSpec:
    """How to construct an engine: `module:attribute` of its info and of a factory taking Settings."""

    info: EngineInfo
    factory: Callable[[Settings], TTSEngine]
    install_hint: str = ""


def _hibari(settings: Settings) -> TTSEngine:
    from tts_studio.engines.hibari_engine import HibariEngine

    return HibariEngine(threads=settings.hibari_threads)


def _info(path: str) -> EngineInfo:
    module, _, attr = path.partition(":")
    info: EngineInfo = getattr(importlib.import_module(module), attr)
    return info


def default_registry() -> dict[str, EngineSpec]:
    """Every engine TTS Studio knows. Engine modules import their packages only in `load()`."""
    return {
        "hibari": EngineSpec(_info("tts_studio.engines.hibari_engine:INFO"), _hibari, "pip install hibari-tts"),
    }
