"""The model manager on the real embedded engine: lazy load, leases, idle unload, one inference per device."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, make_settings, wait_until_idle
from tests.doubles import wait_for
from tts_studio.engines.base import AudioChunk, SynthesisRequest
from tts_studio.engines.manager import ModelManager
from tts_studio.engines.registry import default_registry
from tts_studio.errors import ModelNotFound


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
    state = {"active": 0, "peak": 0, "steps": 0}
    guard = threading.Lock()

    def watched(request: SynthesisRequest) -> Iterator[AudioChunk]:
        pieces = original(request)
        while True:
            with guard:
                state["active"] += 1
                state["peak"] = max(state["peak"], state["active"])
            try:
                piece = next(pieces, None)
                time.sleep(0.005)  # widen the window in which an overlap would show
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
    assert state["steps"] >= 4 * 5 and state["peak"] == 1
    wait_until_idle(live)
