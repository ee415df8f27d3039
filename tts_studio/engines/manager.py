"""The one model manager: lazy loads, leases, idle unload and one inference per device at a time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tts_studio.config import Settings
from tts_studio.engines.base import EngineInfo, TTSEngine
from tts_studio.engines.device import free_memory, pick_device
from tts_studio.engines.registry import EngineSpec
from tts_studio.errors import EngineUnavailable, ModelNotFound, StudioError

log = logging.getLogger(__name__)


@dataclass
class _Slot:
    spec: EngineSpec
    engine: TTSEngine | None = None
    device: str = "cpu"
    refs: int = 0
    generation: int = 0
    state: str = "unloaded"  # unloaded | loading | loaded | error
    error: str | None = None
    load_seconds: float | None = None
    last_used: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    timer: threading.Timer | None = None


class Lease:
    """A loaded engine held for the length of one request; `release()` is idempotent."""

    def __init__(self, manager: ModelManager, engine_id: str, engine: TTSEngine, lane: str) -> None:
        self.manager = manager
        self.engine_id = engine_id
        self.engine = engine
        self.device_lock = manager.device_lock(lane)
        self._released = False
        self._guard = threading.Lock()

    def release(self) -> None:
        with self._guard:
            if self._released:
                return
            self._released = True
        self.manager._release(self.engine_id)


class ModelManager:
    """Shared by the API and the UI. Engines load on first use and unload after `idle_unload_seconds`."""

    def __init__(self, registry: Mapping[str, EngineSpec], settings: Settings) -> None:
        self._slots = {engine_id: _Slot(spec) for engine_id, spec in registry.items()}
        self._settings = settings
        self._device_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._gpu_guard = threading.Lock()  # GPU loads one at a time, each making room first

    # -- lookup ---------------------------------------------------------------------------
    @property
    def engine_ids(self) -> list[str]:
        return list(self._slots)

    def info(self, engine_id: str) -> EngineInfo:
        return self._slot(engine_id).spec.info

    def _slot(self, engine_id: str) -> _Slot:
        try:
            return self._slots[engine_id]
        except KeyError:
            raise ModelNotFound(f"The engine '{engine_id}' does not exist.", param="model") from None

    def device_lock(self, device: str) -> threading.Lock:
        """The lock that serialises inference on `device`."""
        with self._locks_guard:
            return self._device_locks.setdefault(device, threading.Lock())

    # -- leases ---------------------------------------------------------------------------
    def installed(self, engine_id: str) -> bool:
        return self._slot(engine_id).spec.installed

    def install_hint(self, engine_id: str) -> str:
        return self._slot(engine_id).spec.install_hint

    def acquire(self, engine_id: str) -> Lease:
        """Load the engine if needed (blocking) and hold it until the lease is released."""
        slot = self._slot(engine_id)
        if slot.spec.info.gpu and slot.engine is None:
            with self._gpu_guard:
                self._make_room(engine_id)
                return self._acquire(engine_id, slot)
        return self._acquire(engine_id, slot)

    def _make_room(self, engine_id: str, wait: float = 30.0) -> None:
        """Unload the least recently used GPU engines so at most `max_gpu_engines` stay resident."""
        others = [(eid, s) for eid, s in self._slots.items() if eid != engine_id and s.spec.info.gpu and s.engine]
        others.sort(key=lambda item: item[1].last_used)
        excess = len(others) - (self._settings.max_gpu_engines - 1)
        for other_id, other in others[: max(0, excess)]:
            deadline = time.monotonic() + wait
            while not self.unload(other_id) and other.engine is not None:
                if time.monotonic() > deadline:
                    raise EngineUnavailable(
                        f"The GPU is busy with '{other_id}'; retry when it finishes.", headers={"Retry-After": "5"}
                    )
                time.sleep(0.05)
            log.info("Evicted %s to make room for %s", other_id, engine_id)

    def _acquire(self, engine_id: str, slot: _Slot) -> Lease:
        with slot.lock:
            if slot.timer is not None:
                slot.timer.cancel()
                slot.timer = None
            if slot.engine is None:
                self._load(engine_id, slot)
            assert slot.engine is not None
            slot.refs += 1
            slot.generation += 1
            slot.last_used = time.monotonic()
            # GPU engines share their device's lock; CPU engines each get their own lane, so the
            # embedded engine keeps speaking while a GPU engine (or its CPU fallback) works.
            lane = slot.device if slot.spec.info.gpu else f"{slot.device}:{engine_id}"
            return Lease(self, engine_id, slot.engine, lane)

    @contextmanager
    def lease(self, engine_id: str) -> Iterator[Lease]:
        lease = self.acquire(engine_id)
        try:
            yield lease
        finally:
            lease.release()

    def _load(self, engine_id: str, slot: _Slot) -> None:
        info = slot.spec.info
        device = pick_device(self._settings.device) if info.gpu else "cpu"
        slot.state, slot.error = "loading", None
        log.info("Loading engine %s on %s", engine_id, device)
        started = time.perf_counter()
        try:
            engine = slot.spec.factory(self._settings)
            engine.load(device)
        except StudioError as exc:
            slot.state, slot.error = "error", exc.message
            raise
        except ImportError as exc:
            slot.state, slot.error = "error", f"{exc}"
            hint = f" Install it with: {slot.spec.install_hint}" if slot.spec.install_hint else ""
            raise EngineUnavailable(f"The engine '{engine_id}' is not installed.{hint}") from exc
        except Exception as exc:
            log.exception("Engine %s failed to load", engine_id)
            slot.state, slot.error = "error", f"{type(exc).__name__}: {exc}"
            raise EngineUnavailable(
                f"The engine '{engine_id}' failed to load ({type(exc).__name__}); see the server log."
            ) from exc
        slot.engine, slot.device, slot.state = engine, device, "loaded"
        slot.load_seconds = time.perf_counter() - started
        log.info("Engine %s loaded on %s in %.2f s", engine_id, device, slot.load_seconds)

    def _release(self, engine_id: str) -> None:
        slot = self._slots[engine_id]
        with slot.lock:
            slot.refs -= 1
            slot.last_used = time.monotonic()
            if slot.refs > 0:
                return
            ttl = self._settings.idle_unload_seconds
            if ttl == 0:
                self._unload_locked(engine_id, slot)
            elif ttl > 0:
                timer = threading.Timer(ttl, self._expire, args=(engine_id, slot.generation))
                timer.daemon = True
                slot.timer = timer
                timer.start()

    def _expire(self, engine_id: str, generation: int) -> None:
        slot = self._slots[engine_id]
        with slot.lock:
            if slot.refs == 0 and slot.generation == generation and slot.engine is not None:
                log.info("Engine %s idle for %.0f s: unloading", engine_id, self._settings.idle_unload_seconds)
                self._unload_locked(engine_id, slot)

    # -- unloading ------------------------------------------------------------------------
    def unload(self, engine_id: str) -> bool:
        """Unload now if loaded and not in use; True when it was unloaded."""
        slot = self._slot(engine_id)
        with slot.lock:
            if slot.engine is None or slot.refs > 0:
                return False
            self._unload_locked(engine_id, slot)
            return True

    def unload_all(self) -> None:
        for engine_id, slot in self._slots.items():
            with slot.lock:
                if slot.timer is not None:
                    slot.timer.cancel()
                    slot.timer = None
                if slot.engine is not None:
                    self._unload_locked(engine_id, slot)

    def _unload_locked(self, engine_id: str, slot: _Slot) -> None:
        engine, device = slot.engine, slot.device
        slot.engine, slot.state = None, "unloaded"
        if engine is not None:
            engine.unload()
            del engine
            free_memory(device)
            log.info("Engine %s unloaded", engine_id)

    # -- status ---------------------------------------------------------------------------
    def is_loaded(self, engine_id: str) -> bool:
        return self._slot(engine_id).engine is not None

    def in_use(self, engine_id: str) -> int:
        return self._slot(engine_id).refs

    def status(self) -> dict[str, dict[str, Any]]:
        """Per-engine state for /health."""
        return {
            engine_id: {
                "installed": slot.spec.installed,
                "gpu": slot.spec.info.gpu,
                "state": slot.state,
                "device": slot.device if slot.engine is not None else None,
                "in_use": slot.refs,
                "load_seconds": slot.load_seconds,
                "error": slot.error,
            }
            for engine_id, slot in self._slots.items()
        }
