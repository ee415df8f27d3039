"""The model manager on the real embedded engine: lazy load, leases, idle unload, one inference per device."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, make_settings, wait_until_idle
from tests.doubles import DoubleEngine, Script, double_info, registry_with, wait_for
from tts_studio.config import Settings
from tts_studio.engines import manager as manager_module
from tts_studio.engines.base import AudioChunk, SynthesisRequest
from tts_studio.engines.manager import ModelManager
from tts_studio.engines.registry import EngineSpec, default_registry
from tts_studio.engines.scheduler import Priority
from tts_studio.errors import EngineUnavailable, ModelNotFound


def manager(tmp_path: Path, ttl: float) -> ModelManager:
    return ModelManager(default_registry(), make_settings(tmp_path, idle_unload_seconds=ttl))


def test_lazy_load_and_lease_counting(tmp_path: Path) -> None:
    m = manager(tmp_path, -1)
    assert not m.is_loaded("hibari")
    with m.lease("hibari") as first, m.lease("hibari") as second:
        assert first.engine is second.engine
        assert m.in_use("hibari") == 2
    assert m.in_use("hibari") == 0 and m.is_loaded("hibari")
    assert m.unload("hibari") and not m.is_loaded("hibari")
    with pytest.raises(ModelNotFound):
        m.acquire("nope")


def test_unload_refused_while_leased(tmp_path: Path) -> None:
    m = manager(tmp_path, -1)
    lease = m.acquire("hibari")
    assert not m.unload("hibari")
    lease.release()
    lease.release()  # idempotent
    assert m.in_use("hibari") == 0


def test_idle_unload_after_ttl(tmp_path: Path) -> None:
    m = manager(tmp_path, 0.3)
    with m.lease("hibari"):
        pass
    assert m.is_loaded("hibari")
    deadline = time.monotonic() + 5
    while m.is_loaded("hibari") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not m.is_loaded("hibari")
    with m.lease("hibari") as lease:  # loads again on demand
        audio = list(lease.engine.stream(SynthesisRequest(text="Back again.", voice="heart")))
    assert sum(len(c.samples) for c in audio) > 10_000


def test_ttl_zero_unloads_at_once(tmp_path: Path) -> None:
    m = manager(tmp_path, 0)
    with m.lease("hibari"):
        assert m.is_loaded("hibari")
    m.settle()  # the unload runs on the manager's unload thread
    assert not m.is_loaded("hibari")


def test_one_inference_per_device(live_server: Callable[..., LiveServer]) -> None:
    """Concurrent requests interleave, but the device lock never lets two engine steps overlap."""
    live = live_server()
    lm: ModelManager = live.app.state.manager
    with lm.lease("hibari") as lease:
        engine, device = lease.engine, lease.queue
    original = engine.stream
    state = {"active": 0, "peak": 0, "steps": 0, "queued_at_first_step": -1}
    guard = threading.Lock()

    def watched(request: SynthesisRequest) -> Iterator[AudioChunk]:
        pieces = original(request)
        while True:
            with guard:
                state["active"] += 1
                state["peak"] = max(state["peak"], state["active"])
                if state["queued_at_first_step"] < 0:  # the others wait for the device, not step alongside
                    state["queued_at_first_step"] = device.waiting
            try:
                piece = next(pieces, None)
            finally:
                with guard:
                    state["active"] -= 1
                    state["steps"] += 1
            if piece is None:
                return
            yield piece

    engine.stream = watched  # type: ignore[method-assign]
    results: list[int] = []

    def request() -> None:
        body = {
            "model": "tts-1",
            "voice": "alloy",
            "input": "One. Two. Three. Four. Five.",
            "response_format": "pcm",
        }
        results.append(len(httpx.post(f"{live.base_url}/audio/speech", json=body, timeout=60).content))

    threads = [threading.Thread(target=request) for _ in range(4)]
    with device.turn():  # hold the device: no request can synthesize meanwhile
        for t in threads:
            t.start()
        wait_for(lambda: device.waiting == 4)  # all four are queued for the device
        assert httpx.get(f"{live.url}/health").json()["active_requests"] == 4
        assert results == [] and state["steps"] == 0
    for t in threads:
        t.join(30)
    assert len(results) == 4 and min(results) > 24000
    assert state["steps"] >= 4 * 5 and state["peak"] == 1 and state["queued_at_first_step"] == 3
    wait_until_idle(live)


# -- unloading and shutdown, forced with the engine double ------------------------------------------------
def _doubles(tmp_path: Path, script: Script, engine_id: str = "cpu-x") -> ModelManager:
    return ModelManager(registry_with((double_info(engine_id), script), core=False), make_settings(tmp_path))


def _in_thread(fn: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)  # daemon: a deadlocked one must not hang the run
    thread.start()
    return thread


class _KeepingEngine(DoubleEngine):
    """Holds on to garbage that its unload() lets go of."""

    kept: object = None

    def unload(self) -> None:
        self.kept = None
        super().unload()


def test_shutdown_survives_a_lease_that_gc_finalises_during_unload(tmp_path: Path) -> None:
    """A stream abandoned mid-way (its client gone, its generator never closed) holds its lease until the
    garbage collector finalises it. Here it becomes garbage in the engine's unload(); the collection that
    frees device memory then releases the lease on the unloading thread. That must not deadlock on the
    slot's lock (SIGTERM was ignored forever)."""
    script = Script()
    info = double_info("cpu-x")
    engines: list[_KeepingEngine] = []

    def factory(settings: Settings) -> _KeepingEngine:
        engines.append(_KeepingEngine(info, script))
        return engines[-1]

    m = ModelManager({"cpu-x": EngineSpec(info, factory)}, make_settings(tmp_path))

    def speaking() -> Iterator[AudioChunk]:
        lease = m.acquire("cpu-x")
        try:
            yield from lease.engine.stream(SynthesisRequest(text="Abandoned.", voice="heart"))
        finally:
            lease.release()

    stream = speaking()
    next(stream)
    cycle: dict[str, object] = {"stream": stream}
    cycle["self"] = cycle  # once the engine lets go, only a collection can free it
    engines[0].kept = cycle
    del stream, cycle
    assert m.in_use("cpu-x") == 1
    shutdown = _in_thread(lambda: m.unload_all(timeout=0))
    shutdown.join(30)
    assert not shutdown.is_alive(), "unload_all deadlocked"
    assert not m.is_loaded("cpu-x") and m.in_use("cpu-x") == 0
    assert script.log == ["load cpu-x", "unload cpu-x"]


def test_a_lease_released_under_its_slot_lock_does_not_deadlock(tmp_path: Path) -> None:
    """An automatic collection can run a finaliser (an abandoned stream releasing its lease) on a thread that
    holds the slot lock, e.g. while a new lease is built; the lock is re-entrant for that."""
    m = _doubles(tmp_path, Script())
    lease = m.acquire("cpu-x")

    def finalised_under_the_lock() -> None:
        with m._slots["cpu-x"].lock:
            lease.release()

    thread = _in_thread(finalised_under_the_lock)
    thread.join(30)
    assert not thread.is_alive(), "release deadlocked under the slot lock"
    assert m.in_use("cpu-x") == 0


def test_shutdown_refuses_new_leases_and_waits_for_live_ones(tmp_path: Path) -> None:
    script = Script()
    m = _doubles(tmp_path, script)
    live = m.acquire("cpu-x")
    shutdown = _in_thread(lambda: m.unload_all(timeout=60))
    wait_for(lambda: m.closing)
    with pytest.raises(EngineUnavailable) as info:
        m.acquire("cpu-x")
    assert "shutting down" in info.value.message
    assert m.is_loaded("cpu-x") and shutdown.is_alive()  # the live lease keeps its engine
    script.log.append("released")
    live.release()
    shutdown.join(30)
    assert not shutdown.is_alive() and not m.is_loaded("cpu-x")
    assert script.log == ["load cpu-x", "released", "unload cpu-x"]


@pytest.mark.parametrize("priority", [Priority.INTERACTIVE, Priority.BACKGROUND])
def test_shutdown_wakes_requests_waiting_for_their_device(tmp_path: Path, priority: Priority) -> None:
    """A request queued for its device (background work queues without limit) gets a 503 at once when
    shutdown begins, so its lease ends; the one holding the device keeps its turn."""
    m = _doubles(tmp_path, Script())
    holder, waiter = m.acquire("cpu-x"), m.acquire("cpu-x", priority)
    errors: list[EngineUnavailable] = []

    def wait_for_a_turn() -> None:
        try:
            with waiter.turn():
                pass
        except EngineUnavailable as exc:
            errors.append(exc)
        finally:
            waiter.release()

    with holder.turn():
        thread = _in_thread(wait_for_a_turn)
        wait_for(lambda: holder.queue.waiting == 1)
        m.close()
        thread.join(30)
        assert not thread.is_alive() and [e.code for e in errors] == ["shutting_down"]
        assert m.in_use("cpu-x") == 1  # the holder's lease, still in its turn
    holder.release()
    with pytest.raises(EngineUnavailable):
        m.acquire("cpu-x")


def test_shutdown_unloads_anyway_when_a_lease_outlives_its_wait(tmp_path: Path) -> None:
    script = Script()
    m = _doubles(tmp_path, script)
    stuck = m.acquire("cpu-x")
    m.unload_all(timeout=0)
    assert not m.is_loaded("cpu-x") and script.log == ["load cpu-x", "unload cpu-x"]
    stuck.release()  # late: nothing left to unload, nothing scheduled
    assert m.in_use("cpu-x") == 0 and m.status()["cpu-x"]["state"] == "unloaded"


def test_status_says_unloading_while_the_engine_unloads(tmp_path: Path) -> None:
    script = Script(unload_gate=threading.Event())
    m = _doubles(tmp_path, script)
    with m.lease("cpu-x"):
        pass
    unloading = _in_thread(lambda: m.unload("cpu-x"))
    assert script.unload_entered.wait(30)
    assert m.status()["cpu-x"]["state"] == "unloading"
    assert script.unload_gate is not None
    script.unload_gate.set()
    unloading.join(30)
    assert not unloading.is_alive() and m.status()["cpu-x"]["state"] == "unloaded"


class _FailingEngine(DoubleEngine):
    """Runs out of memory half-way through load(); its unload() may fail too."""

    unload_fails = False

    def load(self, device: str) -> None:
        self.script.log.append(f"load {self.info.id}")
        raise RuntimeError("CUDA out of memory")

    def unload(self) -> None:
        super().unload()
        if self.unload_fails:
            raise RuntimeError("unload failed too")


@pytest.mark.parametrize("unload_fails", [False, True])
def test_a_failed_load_frees_what_it_allocated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unload_fails: bool
) -> None:
    script = Script()
    info = double_info("gpu-x", gpu=True)

    def factory(settings: Settings) -> _FailingEngine:
        engine = _FailingEngine(info, script)
        engine.unload_fails = unload_fails
        return engine

    freed: list[str] = []
    monkeypatch.setattr(manager_module, "free_memory", freed.append)
    m = ModelManager({"gpu-x": EngineSpec(info, factory)}, make_settings(tmp_path, device="cpu"))
    with pytest.raises(EngineUnavailable) as error:
        m.acquire("gpu-x")
    assert isinstance(error.value.__cause__, RuntimeError) and "out of memory" in str(error.value.__cause__)
    assert script.log == ["load gpu-x", "unload gpu-x"] and freed == ["cpu"]
    assert m.status()["gpu-x"]["state"] == "error" and not m.is_loaded("gpu-x")
