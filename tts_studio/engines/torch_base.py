"""What the torch engines share: weights folder, device, seeding, a bounded conditioning cache, out-of-
memory as a 503, freeing memory. Torch itself is imported only inside methods (after `load()`)."""

from __future__ import annotations

import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tts_studio.config import Settings
from tts_studio.engines.base import EngineInfo, SynthesisRequest, VoiceReference
from tts_studio.engines.device import free_memory
from tts_studio.engines.weights import resolve_weights
from tts_studio.errors import EngineUnavailable

MAX_CACHED_VOICES = 16
MAX_CACHED_BYTES = 512 * 1024 * 1024


def seed_everything(seed: int | None) -> None:
    if seed is None:
        return
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def tensor_bytes(value: Any, _depth: int = 0) -> int:
    """Device memory held by the tensors in `value` (nested containers and object attributes)."""
    if _depth > 4 or value is None or isinstance(value, (str, bytes, int, float, bool)):
        return 0
    if hasattr(value, "element_size") and hasattr(value, "nelement"):
        return int(value.element_size() * value.nelement())
    if isinstance(value, dict):
        return sum(tensor_bytes(v, _depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(v, _depth + 1) for v in value)
    if hasattr(value, "__dict__"):
        return sum(tensor_bytes(v, _depth + 1) for v in vars(value).values())
    return 0


class VoiceCache:
    """Per-voice conditioning of one engine: in memory (least recently used first out, bounded by entries
    and bytes), then on disk (by content hash, written atomically), else built once."""

    def __init__(
        self,
        engine_id: str,
        save: Callable[[Any, Path], None],
        load: Callable[[Path], Any],
        max_entries: int = MAX_CACHED_VOICES,
        max_bytes: int = MAX_CACHED_BYTES,
        size: Callable[[Any], int] = tensor_bytes,
    ) -> None:
        self._engine_id = engine_id
        self._save = save
        self._load = load
        self._size = size
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._memory: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self.built = 0  # conditionings encoded from audio (not from a cache) since the last clear

    @property
    def entries(self) -> int:
        return len(self._memory)

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self._memory.values())

    def clear(self) -> None:
        self._memory.clear()
        self.built = 0

    def get(self, reference: VoiceReference, build: Callable[[], Any]) -> Any:
        key = reference.content_hash
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key][0]
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
        self._memory[key] = (value, self._size(value))
        self._evict()
        return value

    def _evict(self) -> None:
        while len(self._memory) > 1 and (len(self._memory) > self.max_entries or self.bytes > self.max_bytes):
            self._memory.popitem(last=False)

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


class TorchEngine:
    """Base of the torch engines. Subclasses implement `_load_model`, `_save_voice` and `_load_voice`."""

    def __init__(self, info: EngineInfo, settings: Settings) -> None:
        self.info = info
        self._settings = settings
        self._model: Any = None
        self._device = "cpu"
        self._voices = VoiceCache(info.id, self._save_voice, self._load_voice)

    def _load_model(self, folder: Path, device: str) -> Any:
        raise NotImplementedError

    def _save_voice(self, value: Any, path: Path) -> None:
        import torch

        torch.save(value, path)

    def _load_voice(self, path: Path) -> Any:
        import torch

        return torch.load(path, map_location=self._device, weights_only=True)

    def load(self, device: str) -> None:
        folder = resolve_weights(self._settings, self.info)
        self._model = self._load_model(folder, device)
        self._device = device

    def unload(self) -> None:
        self._model = None
        self._voices.clear()

    @property
    def encoded(self) -> int:
        """References encoded from audio (not from a cache) since load."""
        return self._voices.built

    def _loaded(self) -> Any:
        if self._model is None:
            raise EngineUnavailable(f"The engine '{self.info.id}' is not loaded.")
        return self._model

    def _params(self, request: SynthesisRequest) -> dict[str, Any]:
        """The engine's parameters with their defaults; `seed` is applied here, not passed on."""
        params = {p.name: request.params.get(p.name, p.default) for p in self.info.params}
        seed_everything(params.pop("seed", None))
        return params

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        """Out-of-memory errors become a 503 that says what to do."""
        try:
            yield
        except Exception as exc:
            oom = out_of_memory(exc, self._device, self.info.id)
            if oom is not None:
                raise oom from exc
            raise
