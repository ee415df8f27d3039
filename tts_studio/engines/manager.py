"""The one model manager, and the one place that schedules devices: lazy loads, leases, fair device
queues with priorities and a wait limit, GPU eviction, downloads outside every device lock, and idle
unloads that never run on the event loop.

Unloading never runs under a slot lock: the engine is detached under it ("unloading") and disposed after
it is released. Disposing runs gc.collect(), whose finalisers (streams abandoned by clients that left)
release leases, and releasing takes the slot lock. The lock is re-entrant as well, for a collection that
starts on its own while a thread holds it."""

from __future__ import annotations

import gc
import logging
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

from tts_studio.config import Settings
from tts_studio.engines.base import EngineInfo, TTSEngine
from tts_studio.engines.device import free_memory, pick_device
from tts_studio.engines.registry import EngineSpec
from tts_studio.engines.scheduler import DeviceQueue, Hold, Priority, busy
from tts_studio.engines.weights import resolve_weights, weights_present
from tts_studio.errors import EngineUnavailable, ModelNotFound, StudioError

log = logging.getLogger(__name__)


@dataclass
class _Slot:
    spec: EngineSpec
    engine: TTSEngine | None = None
    device: str = "cpu"
    refs: int = 0
    generation: int = 0
    state: str = "unloaded"  # unloaded | downloading | loading | loaded | unloading | error
    error: str | None = None
    load_seconds: float | None = None
    last_used: float = 0.0
    draining: bool = False  # being evicted: new leases wait for the GPU guard instead of joining
    download: tuple[int, int] | None = None  # (files done, files in all) while downloading
    disposing: bool = False  # a detached engine is being unloaded; loads wait for its memory
    # guards every field above; a condition (notified when a disposal ends) over a re-entrant lock
    lock: threading.Condition = field(default_factory=lambda: threading.Condition(threading.RLock()))
    prepare_lock: threading.Lock = field(default_factory=threading.Lock)  # one download at a time
    timer: threading.Timer | None = None


@dataclass
class _Detached:
    """An engine taken out of its slot under the lock, to be disposed of once the lock is released."""

    engine_id: str
    slot: _Slot
    engine: TTSEngine | None
    device: str


class Lease:
    """A loaded engine held for one request. `turn()` wraps each inference step; `release()` is idempotent."""

    def __init__(
        self, manager: ModelManager, engine_id: str, engine: TTSEngine, queue: DeviceQueue, priority: Priority
    ) -> None:
        self.manager = manager
        self.engine_id = engine_id
        self.engine = engine
        self.queue = queue
        self.priority = priority
        self.hold = Hold.PIECE
        self._released = False
        self._guard = threading.Lock()

    def turn(self) -> Any:
        """The device for one piece (per-piece leases); a no-op for leases that hold it for the stream."""
        return self.queue.turn(self.priority) if self.hold is Hold.PIECE else nullcontext()

    def release(self) -> None:
        with self._guard:
            if self._released:
                return
            self._released = True
        if self.hold is Hold.STREAM:
            self.queue.release()
        self.manager._release(self.engine_id)


class ModelManager:
    """Shared by the API, the UI and background jobs. Engines load on first use and unload when idle."""

    def __init__(self, registry: Mapping[str, EngineSpec], settings: Settings) -> None:
        self._slots = {engine_id: _Slot(spec) for engine_id, spec in registry.items()}
        self._settings = settings
        self._queues: dict[str, DeviceQueue] = {}
        self._queues_guard = threading.Lock()
        self._gpu_guard = threading.Lock()  # GPU loads one at a time, each making room first
        self._released = threading.Condition()  # notified whenever a lease ends (eviction waits on it)
        self._unloader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unload")
        self._closing = False  # set by unload_all(): no new leases

    @property
    def closing(self) -> bool:
        """True once shutdown began: new leases are refused."""
        return self._closing

    def _check_open(self) -> None:
        if self._closing:
            raise EngineUnavailable("The studio is shutting down.", code="shutting_down")

    # -- lookup ---------------------------------------------------------------------------
    @property
    def engine_ids(self) -> list[str]:
        return list(self._slots)

    def info(self, engine_id: str) -> EngineInfo:
        return self._slot(engine_id).spec.info

    def replace_info(self, engine_id: str, info: EngineInfo) -> None:
        """New static facts about an engine (the embedded engine after voices were downloaded)."""
        slot = self._slot(engine_id)
        with slot.lock:
            slot.spec = replace(slot.spec, info=info)

    def installed(self, engine_id: str) -> bool:
        return self._slot(engine_id).spec.installed

    def install_hint(self, engine_id: str) -> str:
        return self._slot(engine_id).spec.install_hint

    def _slot(self, engine_id: str) -> _Slot:
        try:
            return self._slots[engine_id]
        except KeyError:
            raise ModelNotFound(f"The engine '{engine_id}' does not exist.", param="model") from None

    def queue(self, lane: str) -> DeviceQueue:
        """The turn queue of a lane: one per GPU device, one per CPU engine."""
        with self._queues_guard:
            if lane not in self._queues:
                self._queues[lane] = DeviceQueue(lane, self._settings.queue_wait_seconds)
                if self._closing:
                    self._queues[lane].close()
            return self._queues[lane]

    def _lane(self, engine_id: str, slot: _Slot) -> str:
        # GPU engines share their device's queue; CPU engines each get their own lane, so the
        # embedded engine keeps speaking while a GPU engine (or its CPU fallback) works.
        return slot.device if slot.spec.info.gpu else f"{slot.device}:{engine_id}"

    # -- leases ---------------------------------------------------------------------------
    def acquire(self, engine_id: str, priority: Priority = Priority.INTERACTIVE, hold: Hold | None = None) -> Lease:
        """Load the engine if needed (blocking) and hold it until the lease is released. Engines that keep
        per-stream state (`exclusive_stream`) hold their device for the whole lease."""
        slot = self._slot(engine_id)
        self._check_open()
        self._check_present(engine_id, slot.spec)
        lease = self._join_loaded(engine_id, slot, priority) or self._load_then_join(engine_id, slot, priority)
        lease.hold = hold if hold is not None else self._hold(slot.spec)
        if lease.hold is Hold.STREAM:
            try:
                lease.queue.acquire(priority)
            except BaseException:
                lease.hold = Hold.PIECE  # nothing to give back to the queue
                lease.release()
                raise
        return lease

    @staticmethod
    def _check_present(engine_id: str, spec: EngineSpec) -> None:
        """An engine left out of this deployment (Ray) never loads here, whatever is importable."""
        if spec.absent:
            raise EngineUnavailable(
                f"The engine '{engine_id}' is not deployed on this cluster: {spec.install_hint}.",
                code="engine_not_deployed",
            )

    @staticmethod
    def _hold(spec: EngineSpec) -> Hold:
        if spec.remote:
            return Hold.NONE  # its deployment's replicas take their own turns
        return Hold.STREAM if spec.info.exclusive_stream else Hold.PIECE

    @contextmanager
    def lease(self, engine_id: str, priority: Priority = Priority.INTERACTIVE) -> Iterator[Lease]:
        lease = self.acquire(engine_id, priority)
        try:
            yield lease
        finally:
            lease.release()

    def _lease_locked(self, engine_id: str, slot: _Slot, priority: Priority) -> Lease:
        self._check_open()  # under the slot lock: unload_all() passes every slot lock after setting the flag
        assert slot.engine is not None
        if slot.timer is not None:
            slot.timer.cancel()
            slot.timer = None
        slot.refs += 1
        slot.generation += 1  # a pending idle unload of an older generation does nothing
        slot.last_used = time.monotonic()
        return Lease(self, engine_id, slot.engine, self.queue(self._lane(engine_id, slot)), priority)

    def _join_loaded(self, engine_id: str, slot: _Slot, priority: Priority) -> Lease | None:
        """A lease on the loaded engine, decided under the slot lock (an idle unload cannot slip in)."""
        with slot.lock:
            if slot.engine is None or slot.draining:
                return None
            return self._lease_locked(engine_id, slot, priority)

    def _load_then_join(self, engine_id: str, slot: _Slot, priority: Priority) -> Lease:
        if not slot.spec.info.gpu or slot.spec.remote:
            with self._locked(slot) as doomed:
                if slot.engine is None:
                    self._load(engine_id, slot, doomed)
                return self._lease_locked(engine_id, slot, priority)
        self.prepare(engine_id)  # imports and weights first, outside every device lock
        with self._gpu_guard:
            with slot.lock:
                resident = slot.engine is not None
            if not resident:
                self._make_room(engine_id)
            with self._locked(slot) as doomed:
                if slot.engine is None:
                    self._load(engine_id, slot, doomed)
                return self._lease_locked(engine_id, slot, priority)

    def prepare(self, engine_id: str) -> None:
        """Make sure the engine can load: its packages import and its weights are on disk (downloading
        them when allowed, with progress in `status()`). Holds no device lock: a long download blocks
        nothing but other requests for this engine."""
        slot = self._slot(engine_id)
        spec = slot.spec
        self._check_present(engine_id, spec)
        with slot.prepare_lock:
            try:
                spec.import_packages()  # an engine's own importer contains its packages' import side effects
            except ImportError as exc:
                with slot.lock:
                    slot.state, slot.error = "error", str(exc)
                hint = f" Install it with: {spec.install_hint}" if spec.install_hint else ""
                raise EngineUnavailable(f"The engine '{engine_id}' is not installed.{hint}") from exc
            if spec.info.weights_repo is None or weights_present(self._settings, spec.info):
                return
            self.download(engine_id)

    def download(self, engine_id: str, explicit: bool = False) -> str:
        """Fetch the engine's weights (`explicit`: the user asked; else only when allow_downloads)."""
        slot = self._slot(engine_id)

        def progress(done: int, total: int) -> None:
            slot.download = (done, total)

        with slot.lock:
            previous, slot.state, slot.download = slot.state, "downloading", (0, 0)
        try:
            path = resolve_weights(self._settings, slot.spec.info, download=explicit or None, progress=progress)
        except StudioError as exc:
            with slot.lock:
                slot.state, slot.error, slot.download = "error", exc.message, None
            raise
        with slot.lock:
            slot.state = previous if previous != "downloading" else "unloaded"
            slot.download = None
        return str(path)

    def _make_room(self, engine_id: str) -> None:
        """Evict least recently used GPU engines so at most `max_gpu_engines` stay resident. Waits (without
        polling) for their leases to end; new leases on them queue behind this load meanwhile."""
        others = [(eid, s) for eid, s in self._slots.items() if eid != engine_id and s.spec.info.gpu and s.engine]
        others.sort(key=lambda item: item[1].last_used)
        excess = len(others) - (self._settings.max_gpu_engines - 1)
        for other_id, other in others[: max(0, excess)]:
            with other.lock:
                other.draining = True
            started = time.monotonic()
            try:
                with self._released:
                    while other.refs > 0:
                        remaining = self._settings.queue_wait_seconds - (time.monotonic() - started)
                        if remaining <= 0:
                            raise busy(other.device, time.monotonic() - started)
                        self._released.wait(remaining)
                with self._locked(other) as doomed:
                    if other.refs == 0 and other.engine is not None:
                        doomed.append(self._detach_locked(other_id, other))
                        log.info("Evicting %s to make room for %s", other_id, engine_id)
            finally:
                with other.lock:
                    other.draining = False
        for other_id, other in self._slots.items():  # idle unloads under way elsewhere free their memory first
            if other_id != engine_id and other.spec.info.gpu:
                with other.lock:
                    self._wait_disposed(other)

    def _load(self, engine_id: str, slot: _Slot, doomed: list[_Detached]) -> None:
        """Load under the slot lock. A failed load leaves its engine in `doomed`: unloaded and its device
        memory freed once the lock is released."""
        self._check_open()
        self._wait_disposed(slot)  # the previous instance's memory is back first
        info = slot.spec.info
        device = "ray" if slot.spec.remote else pick_device(self._settings.device) if info.gpu else "cpu"
        slot.state, slot.error = "loading", None
        log.info("Loading engine %s on %s", engine_id, device)
        started = time.perf_counter()
        engine: TTSEngine | None = None
        try:
            engine = slot.spec.factory(self._settings)
            engine.load(device)
        except BaseException as exc:
            error = self._load_error(engine_id, slot, exc)
            # What the failed load allocated is released once the lock is: unload() and free_memory().
            # The traceback's frames (load()'s own among them) would keep it alive: their locals go.
            traceback.clear_frames(exc.__traceback__)
            slot.disposing = True  # loads wait until it is freed
            doomed.append(_Detached(engine_id, slot, engine, device))
            del engine
            if error is exc:
                raise
            raise error from exc
        slot.engine, slot.device, slot.state = engine, device, "loaded"
        slot.load_seconds = time.perf_counter() - started
        log.info("Engine %s loaded on %s in %.2f s", engine_id, device, slot.load_seconds)

    def _load_error(self, engine_id: str, slot: _Slot, exc: BaseException) -> BaseException:
        """Record why a load failed; the error a client sees (`exc` itself when it is one already)."""
        if isinstance(exc, StudioError):
            slot.state, slot.error = "error", exc.message
            return exc
        slot.state, slot.error = "error", f"{type(exc).__name__}: {exc}"
        if isinstance(exc, ImportError):
            slot.error = f"{exc}"
            hint = f" Install it with: {slot.spec.install_hint}" if slot.spec.install_hint else ""
            return EngineUnavailable(f"The engine '{engine_id}' is not installed.{hint}")
        if not isinstance(exc, Exception):
            return exc  # KeyboardInterrupt, SystemExit: as they are
        log.error("Engine %s failed to load", engine_id, exc_info=exc)
        return EngineUnavailable(f"The engine '{engine_id}' failed to load ({type(exc).__name__}); see the server log.")

    def _release(self, engine_id: str) -> None:
        slot = self._slots[engine_id]
        with slot.lock:
            slot.refs -= 1
            slot.last_used = time.monotonic()
            if slot.refs == 0 and not self._closing:
                ttl = self._settings.idle_unload_seconds
                if ttl == 0:  # at once, but on the unload thread: never on the caller's (event loop) thread
                    self._unloader.submit(self._expire, engine_id, slot.generation)
                elif ttl > 0:
                    timer = threading.Timer(ttl, self._expire, args=(engine_id, slot.generation))
                    timer.daemon = True
                    slot.timer = timer
                    timer.start()
        with self._released:
            self._released.notify_all()

    def _expire(self, engine_id: str, generation: int) -> None:
        slot = self._slots[engine_id]
        with self._locked(slot) as doomed:
            if slot.refs == 0 and slot.generation == generation and slot.engine is not None:
                log.info("Engine %s idle: unloading", engine_id)
                doomed.append(self._detach_locked(engine_id, slot))

    def settle(self) -> None:
        """Wait until unloads already scheduled have run (tests, shutdown)."""
        self._unloader.submit(lambda: None).result()

    # -- unloading ------------------------------------------------------------------------
    def unload(self, engine_id: str) -> bool:
        """Unload now if loaded and not in use; True when it was unloaded."""
        slot = self._slot(engine_id)
        with self._locked(slot) as doomed:
            if slot.engine is None or slot.refs > 0:
                return False
            doomed.append(self._detach_locked(engine_id, slot))
        return True

    def close(self) -> None:
        """Begin shutdown: refuse new leases, and wake every request waiting for a device turn with a 503 so
        its lease ends. Never blocks (no slot lock): safe on the event loop, and idempotent."""
        self._closing = True
        with self._queues_guard:
            queues = list(self._queues.values())
        for queue in queues:
            queue.close()

    def unload_all(self, timeout: float = 3.0) -> None:
        """Shutdown: `close()`, give the live leases up to `timeout` seconds to end, then unload every
        engine, in use or not. Bounded but for the engines' own unload()."""
        self.close()
        for slot in self._slots.values():  # past each lock once: every later lease sees the flag
            with slot.lock:
                if slot.timer is not None:
                    slot.timer.cancel()
                    slot.timer = None
        gc.collect()  # streams abandoned by clients that left hold their leases until collected
        deadline = time.monotonic() + timeout
        with self._released:
            while busy_ids := [eid for eid, slot in self._slots.items() if slot.refs > 0]:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning("Unloading %s while still in use (shutdown)", ", ".join(busy_ids))
                    break
                self._released.wait(remaining)
        for engine_id, slot in self._slots.items():
            with self._locked(slot) as doomed:
                if slot.engine is not None:
                    doomed.append(self._detach_locked(engine_id, slot))

    @contextmanager
    def _locked(self, slot: _Slot) -> Iterator[list[_Detached]]:
        """Hold the slot lock; engines detached meanwhile (put in the list) are disposed of once it is
        released, never under it."""
        doomed: list[_Detached] = []
        try:
            with slot.lock:
                yield doomed
        finally:
            while doomed:
                self._dispose(doomed.pop())

    def _detach_locked(self, engine_id: str, slot: _Slot) -> _Detached:
        """Take the engine out of its slot (under the lock): "unloading" until it is disposed of."""
        engine, slot.engine = slot.engine, None
        slot.state, slot.disposing = "unloading", True
        return _Detached(engine_id, slot, engine, slot.device)

    def _dispose(self, detached: _Detached) -> None:
        """Unload a detached engine and free its device memory; no slot lock may be held here (gc runs)."""
        slot, engine, detached.engine = detached.slot, detached.engine, None
        try:
            if engine is not None:
                try:
                    engine.unload()
                except Exception:
                    log.exception("Engine %s failed to unload", detached.engine_id)
            del engine  # the last reference: the collection below can free the model
            try:
                free_memory(detached.device)
            except Exception:
                log.exception("Freeing %s memory failed", detached.device)
            log.info("Engine %s unloaded", detached.engine_id)
        finally:
            with slot.lock:
                slot.disposing = False
                if slot.state == "unloading":
                    slot.state = "unloaded"
                slot.lock.notify_all()

    @staticmethod
    def _wait_disposed(slot: _Slot) -> None:
        """Under the slot lock: wait until a disposal under way has freed the memory of the engine before."""
        while slot.disposing:
            slot.lock.wait()

    # -- status ---------------------------------------------------------------------------
    def is_loaded(self, engine_id: str) -> bool:
        return self._slot(engine_id).engine is not None

    def in_use(self, engine_id: str) -> int:
        return self._slot(engine_id).refs

    def status(self) -> dict[str, dict[str, Any]]:
        """Per-engine state for /health and the Models tab."""
        out: dict[str, dict[str, Any]] = {}
        for engine_id, slot in self._slots.items():
            lane = self._queues.get(self._lane(engine_id, slot))
            out[engine_id] = {
                "installed": slot.spec.installed,
                "gpu": slot.spec.info.gpu,
                "state": slot.state,
                "device": slot.device if slot.engine is not None else None,
                "in_use": slot.refs,
                "queued": lane.waiting if lane is not None and slot.engine is not None else 0,
                "load_seconds": slot.load_seconds,
                "error": slot.error,
                "download": {"files_done": slot.download[0], "files_total": slot.download[1]}
                if slot.download
                else None,
            }
        return out
