"""A deterministic engine double, driven by events, for what a real engine cannot force: eviction while
busy, load/unload races, failures, queue limits, disconnects mid-stream. Never a stand-in for the
embedded engine in anything else."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from tts_studio.engines.base import AudioChunk, EngineInfo, SynthesisRequest
from tts_studio.engines.registry import EngineSpec, default_registry

RATE = 24000


@dataclass
class Script:
    """Shared by every instance of one double: what happened, and gates the test opens."""

    log: list[str] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)  # each piece after the first waits on it
    piece_started: threading.Event = field(default_factory=threading.Event)
    stream_closed: threading.Event = field(default_factory=threading.Event)
    unload_gate: threading.Event | None = None  # unload() waits on it when set
    unload_entered: threading.Event = field(default_factory=threading.Event)
    unload_threads: list[str] = field(default_factory=list)
    pieces: int = 4
    pieces_made: int = 0
    fail_stream: bool = False
    languages: list[str] = field(default_factory=list)  # SynthesisRequest.language of every chunk

    def __post_init__(self) -> None:
        self.gate.set()


class DoubleEngine:
    """Yields `script.pieces` pieces of 0.1 s per chunk, waiting on `script.gate` between pieces."""

    def __init__(self, info: EngineInfo, script: Script) -> None:
        self.info = info
        self.script = script
        self.loaded = False

    def load(self, device: str) -> None:
        self.script.log.append(f"load {self.info.id}")
        self.loaded = True

    def unload(self) -> None:
        self.script.unload_threads.append(threading.current_thread().name)
        self.script.unload_entered.set()
        if self.script.unload_gate is not None:
            assert self.script.unload_gate.wait(30)
        self.script.log.append(f"unload {self.info.id}")
        self.loaded = False

    def stream(self, request: SynthesisRequest) -> Iterator[AudioChunk]:
        assert self.loaded, "synthesis on an unloaded engine"
        self.script.languages.append(request.language)
        try:
            for index in range(self.script.pieces):
                if self.script.fail_stream:
                    raise RuntimeError("engine failure")
                if index:
                    assert self.script.gate.wait(30)
                self.script.piece_started.set()
                self.script.pieces_made += 1
                t = np.arange(RATE // 10) / RATE
                yield AudioChunk((0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), RATE)
        finally:
            self.script.stream_closed.set()


def double_info(engine_id: str, *, gpu: bool = False, exclusive: bool = False, **kw: object) -> EngineInfo:
    return EngineInfo(id=engine_id, name=engine_id, description="test double", sample_rate=RATE, voices=("heart",),
                      gpu=gpu, exclusive_stream=exclusive, **kw)  # type: ignore[arg-type]  # fmt: skip


def registry_with(*specs: tuple[EngineInfo, Script], requires: dict[str, tuple[str, ...]] | None = None,
                  core: bool = True) -> dict[str, EngineSpec]:  # fmt: skip
    registry = default_registry() if core else {}
    for info, script in specs:
        registry[info.id] = EngineSpec(
            info, (lambda s, i=info, sc=script: DoubleEngine(i, sc)), requires=(requires or {}).get(info.id, ())
        )
    return registry


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Block until `predicate()` holds (a synchronisation point, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)
