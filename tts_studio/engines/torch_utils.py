"""Helpers shared by the torch engines (imported only from their load()/stream())."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def cached(path: Path, build: Callable[[], Any], save: Callable[[Any, Path], None], load: Callable[[Path], Any]) -> Any:
    """`load(path)` when the cache file exists, else `build()`, saved atomically for next time."""
    if path.exists():
        try:
            return load(path)
        except Exception:  # a corrupt cache is rebuilt, never fatal
            path.unlink(missing_ok=True)
    value = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        save(value, Path(tmp))
        os.replace(tmp, path)  # noqa: PTH105 - atomic rename
    finally:
        Path(tmp).unlink(missing_ok=True)
    return value


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
