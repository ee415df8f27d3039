"""Helpers shared by the torch engines (imported only from their load()/stream())."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tts_studio.engines.base import VoiceReference
from tts_studio.engines.device import free_memory
from tts_studio.errors import EngineUnavailable


def seed_everything(seed: int | None) -> None:
    if seed is None:
        return
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class VoiceCache:
    """Per-voice conditioning of one engine: in memory, then on disk (by content hash), else built once."""

    def __init__(self, engine_id: str, save: Callable[[Any, Path], None], load: Callable[[Path], Any]) -> None:
        self._engine_id = engine_id
        self._save = save
        self._load = load
        self._memory: dict[str, Any] = {}
        self.built = 0  # conditionings encoded from audio (not from a cache) since the last clear

    def clear(self) -> None:
        self._memory.clear()
        self.built = 0

    def get(self, reference: VoiceReference, build: Callable[[], Any]) -> Any:
        if reference.content_hash in self._memory:
            return self._memory[reference.content_hash]
        path = reference.cache_path(self._engine_id)
        value = None
        if path.exists():
            try:
                value = self._load(path)
            except Exception:  # a corrupt cache is rebuilt, never fatal
                path.unlink(missing_ok=True)
        if value is None:
            value = build()
            self.built += 1
            self._store(value, path)
        self._memory[reference.content_hash] = value
        return value

    def _store(self, value: Any, path: Path) -> None:
        """Written atomically (temp file + rename) so a crash never leaves a half cache."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        try:
            self._save(value, Path(tmp))
            os.replace(tmp, path)  # noqa: PTH105 - atomic rename
        finally:
            Path(tmp).unlink(missing_ok=True)


def out_of_memory(exc: BaseException, device: str, engine_id: str) -> EngineUnavailable | None:
    """A 503 for a CUDA/MPS out-of-memory error (after freeing what can be freed), else None."""
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower():
        free_memory(device)
        return EngineUnavailable(
            f"The engine '{engine_id}' ran out of memory on {device}; try a shorter text or unload other engines.",
            code="out_of_memory",
            headers={"Retry-After": "5"},
        )
    return None
