"""Device scheduling, forced with events on the engine double: eviction, races, failures, queue limits,
priorities, leases released on every path, disconnects during native streaming."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import InProcess, LiveServer, make_settings
from tests.doubles import RATE, Script, double_info, registry_with, wait_for
from tts_studio.audio.decode import DecodedAudio
from tts_studio.audio.dsp import stretch_stream, time_stretch
from tts_studio.engines.base import AudioChunk
from tts_studio.engines.manager import ModelManager
from tts_studio.engines.scheduler import DeviceQueue, Hold, Priority
from tts_studio.errors import EngineUnavailable
from tts_studio.services.pipeline import ClientStalled, Progress, speak
from tts_studio.services.plan import SpeechPlan
from tts_studio.services.voices import ResolvedVoice


def _manager(tmp_path: Path, *specs: Any, **settings: Any) -> ModelManager:
    requires = settings.pop("requires", None)
    return ModelManager(registry_with(*specs, requires=requires), make_settings(tmp_path, **settings))


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except Exception as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_eviction_waits_for_the_busy_engine(tmp_path: Path) -> None:
    script = Script()
    a, b = double_info("gpu-a", gpu=True), double_info("gpu-b", gpu=True)
    m = _manager(tmp_path, (a, script), (b, script), device="cpu")
    busy = m.acquire("gpu-a")
    thread, out = _in_thread(lambda: m.acquire("gpu-b"))
    wait_for(lambda: m._slots["gpu-a"].draining)  # the load of b is waiting for a's lease to end
    assert m.is_loaded("gpu-a") and not m.is_loaded("gpu-b") and script.log == ["load gpu-a"]
    busy.release()
    thread.join(10)
    out[0].release()
    assert script.log == ["load gpu-a", "unload gpu-a", "load gpu-b"]  # one resident GPU engine, ever


def test_eviction_gives_up_with_503_when_the_engine_stays_busy(tmp_path: Path) -> None:
    script = Script()
    a, b = double_info("gpu-a", gpu=True), double_info("gpu-b", gpu=True)
    m = _manager(tmp_path, (a, script), (b, script), device="cpu", queue_wait_seconds=0.2)
    with m.lease("gpu-a"), pytest.raises(EngineUnavailable) as info:
        m.acquire("gpu-b")
    assert info.value.headers["Retry-After"] and info.value.code == "device_busy"
    assert m.is_loaded("gpu-a") and not m._slots["gpu-a"].draining
    with m.lease("gpu-a"):  # still serves new requests
        pass


def test_a_failing_engine_never_evicts_a_working_one(tmp_path: Path) -> None:
    script = Script()
    good = double_info("gpu-good", gpu=True)
    missing = double_info("gpu-missing", gpu=True)
    no_weights = double_info("gpu-noweights", gpu=True, weights_repo="nobody/nothing")
    m = _manager(tmp_path, (good, script), (missing, script), (no_weights, script), device="cpu",
                 allow_downloads=False, requires={"gpu-missing": ("tts_studio_no_such_package",)})  # fmt: skip
    with m.lease("gpu-good"):
        pass
    for engine_id in ("gpu-missing", "gpu-noweights"):
        with pytest.raises(EngineUnavailable):
            m.acquire(engine_id)
        assert m.is_loaded("gpu-good"), engine_id
    assert script.log == ["load gpu-good"]


def test_load_waits_for_an_idle_unload_in_progress(tmp_path: Path) -> None:
    """The loaded-check happens under the slot lock: a lease never gets an engine being unloaded."""
    script = Script(unload_gate=threading.Event())
    m = _manager(tmp_path, (double_info("cpu-x"), script))
    with m.lease("cpu-x"):
        pass
    generation = m._slots["cpu-x"].generation
    expiring, _ = _in_thread(lambda: m._expire("cpu-x", generation))
    assert script.unload_entered.wait(10)
    acquiring, out = _in_thread(lambda: m.acquire("cpu-x"))
    acquiring.join(0.2)
    assert acquiring.is_alive()  # blocked behind the unload, not handed the dying engine
    assert script.unload_gate is not None
    script.unload_gate.set()
    expiring.join(10)
    acquiring.join(10)
    lease = out[0]
    assert lease.engine.loaded and script.log == ["load cpu-x", "unload cpu-x", "load cpu-x"]
    lease.release()


def test_new_lease_cancels_pending_unload(tmp_path: Path) -> None:
    script = Script()
    m = _manager(tmp_path, (double_info("cpu-x"), script), idle_unload_seconds=3600)
    with m.lease("cpu-x"):
        pass
    stale = m._slots["cpu-x"].generation
    with m.lease("cpu-x"):
        m._expire("cpu-x", stale)  # the timer of the first lease fires while the second is held
        assert m.is_loaded("cpu-x")
    m._expire("cpu-x", stale)  # and after it: still a stale generation
    assert m.is_loaded("cpu-x")
    m._expire("cpu-x", m._slots["cpu-x"].generation)
    assert not m.is_loaded("cpu-x")


def test_unload_at_once_runs_off_the_callers_thread(tmp_path: Path) -> None:
    script = Script()
    m = _manager(tmp_path, (double_info("cpu-x"), script), idle_unload_seconds=0)
    with m.lease("cpu-x"):
        pass
    m.settle()
    assert not m.is_loaded("cpu-x")
    assert script.unload_threads and script.unload_threads[0] != threading.current_thread().name
    assert script.unload_threads[0].startswith("unload")


def test_queue_wait_limit_is_503_with_retry_after() -> None:
    queue = DeviceQueue("cuda", wait_limit=0.05)
    queue.acquire()
    with pytest.raises(EngineUnavailable) as info:
        queue.acquire()
    assert info.value.status == 503 and info.value.headers["Retry-After"]
    assert queue.waiting == 0  # the one that gave up left the line
    queue.release()
    queue.acquire()  # free again
    queue.release()


def test_interactive_goes_ahead_of_queued_background_work() -> None:
    queue = DeviceQueue("cuda", wait_limit=None)
    order: list[str] = []
    queue.acquire()

    def take(name: str, priority: Priority) -> None:
        queue.acquire(priority)
        order.append(name)
        queue.release()

    first_bg = threading.Thread(target=take, args=("background-1", Priority.BACKGROUND))
    first_bg.start()
    wait_for(lambda: queue.waiting == 1)
    second_bg = threading.Thread(target=take, args=("background-2", Priority.BACKGROUND))
    second_bg.start()
    wait_for(lambda: queue.waiting == 2)
    interactive = threading.Thread(target=take, args=("interactive", Priority.INTERACTIVE))
    interactive.start()
    wait_for(lambda: queue.waiting == 3)
    queue.release()
    for thread in (first_bg, second_bg, interactive):
        thread.join(10)
    assert order == ["interactive", "background-1", "background-2"]  # FIFO within a priority


def _plan(engine_id: str, info: Any, tmp_path: Path, **kw: Any) -> SpeechPlan:
    base: dict[str, Any] = {"engine_id": engine_id, "info": info, "voice": ResolvedVoice("heart"),
                            "chunks": ("One.", "Two."), "native_speed": 1.0, "tempo": 1.0, "params": {},
                            "instructions": None, "input_chars": 8, "temp_root": tmp_path / "tmp"}  # fmt: skip
    base.update(kw)
    return SpeechPlan(**base)


def test_lease_released_when_the_temp_file_cannot_be_written(tmp_path: Path) -> None:
    script = Script()
    info = double_info("cpu-x", cloning=True)
    m = _manager(tmp_path, (info, script))
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")  # the temp root is a file: mkdir fails
    clip = DecodedAudio(np.zeros(RATE, np.float32), RATE, "wav")
    plan = _plan("cpu-x", info, tmp_path, inline_audio=clip, temp_root=blocker / "tmp")
    with pytest.raises(OSError):
        b"".join(speak(m, [plan], "pcm"))
    assert m.in_use("cpu-x") == 0 and script.log == []  # the lease was never taken


@pytest.mark.parametrize("exclusive", [False, True])
def test_lease_released_when_the_engine_fails(tmp_path: Path, exclusive: bool) -> None:
    script = Script(fail_stream=True)
    info = double_info("cpu-x", exclusive=exclusive)
    m = _manager(tmp_path, (info, script))
    with pytest.raises(RuntimeError):
        b"".join(speak(m, [_plan("cpu-x", info, tmp_path)], "mp3"))
    assert m.in_use("cpu-x") == 0 and not m.queue("cpu:cpu-x").in_use


def test_closing_the_stream_stops_within_one_piece(tmp_path: Path) -> None:
    script = Script(pieces=50)
    script.gate.clear()
    info = double_info("cpu-x", exclusive=True)
    m = _manager(tmp_path, (info, script))
    progress = Progress()
    audio = speak(m, [_plan("cpu-x", info, tmp_path)], "pcm", progress=progress)
    assert next(audio)  # the first piece, then the engine waits on the gate
    assert m.queue("cpu:cpu-x").in_use  # an exclusive lease holds its device for the stream
    closer, _ = _in_thread(audio.close)
    script.gate.set()
    closer.join(10)
    assert script.stream_closed.is_set() and script.pieces_made <= 3
    assert m.in_use("cpu-x") == 0 and not m.queue("cpu:cpu-x").in_use


def test_disconnect_during_a_native_stream_frees_the_device(live_server: Callable[..., LiveServer]) -> None:
    script = Script(pieces=200)
    script.gate.clear()
    info = double_info("native", exclusive=True)
    live = live_server(registry=registry_with((info, script)))
    manager: ModelManager = live.app.state.manager
    body = {"model": "native", "voice": "heart", "input": "A long story.", "response_format": "pcm"}
    with httpx.Client(timeout=30) as http, http.stream("POST", f"{live.base_url}/audio/speech", json=body) as response:
        assert response.status_code == 200
        assert next(response.iter_raw())
    script.gate.set()  # the engine may go on; the server must notice the client is gone and stop it
    assert script.stream_closed.wait(10)
    wait_for(lambda: manager.in_use("native") == 0)
    assert not manager.queue("cpu:native").in_use and script.pieces_made < 200


def test_first_bytes_leave_before_synthesis_ends(live_server: Callable[..., LiveServer]) -> None:
    script = Script(pieces=3)
    script.gate.clear()  # the engine stops after its first piece until the client has bytes
    info = double_info("gated")
    live = live_server(registry=registry_with((info, script)))
    body = {"model": "gated", "voice": "heart", "input": "Hello there.", "response_format": "mp3"}
    with httpx.Client(timeout=30) as http, http.stream("POST", f"{live.base_url}/audio/speech", json=body) as response:
        received = response.iter_bytes()
        first = next(received)
        assert first and script.pieces_made == 1 and not script.stream_closed.is_set()
        script.gate.set()
        rest = b"".join(received)
    assert len(first + rest) > len(first)


def test_piecewise_stretch_equals_stretching_the_whole() -> None:
    t = np.arange(2 * RATE) / RATE
    signal = (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)
    for tempo in (0.3, 0.8, 1.7, 3.5):
        whole = time_stretch(signal, RATE, tempo)
        pieces = [AudioChunk(signal[i : i + 2400], RATE) for i in range(0, len(signal), 2400)]
        joined = np.concatenate([c.samples for c in stretch_stream(pieces, tempo)])
        assert abs(len(joined) - len(whole)) <= 2, tempo
        n = min(len(joined), len(whole))
        assert np.max(np.abs(joined[:n] - whole[:n])) < 1e-3, tempo


def test_holds_follow_the_engine(tmp_path: Path) -> None:
    script = Script()
    m = _manager(tmp_path, (double_info("per-piece"), script), (double_info("whole", exclusive=True), script))
    with m.lease("per-piece") as piece, m.lease("whole") as whole:
        assert piece.hold is Hold.PIECE and whole.hold is Hold.STREAM
        assert not m.queue("cpu:per-piece").in_use and m.queue("cpu:whole").in_use


def test_conditioning_cache_is_bounded_by_entries_and_bytes(tmp_path: Path) -> None:
    from tts_studio.engines.base import VoiceReference
    from tts_studio.engines.torch_base import VoiceCache

    def ref(n: int) -> VoiceReference:
        return VoiceReference(f"v{n}", tmp_path / "a.wav", RATE, None, "en", f"{n:064x}", tmp_path / f"cache{n}")

    saved: list[Path] = []
    cache = VoiceCache("x", lambda value, path: saved.append(path) or path.write_bytes(b"c"), lambda path: None,
                       max_entries=3, max_bytes=1000, size=len)  # fmt: skip
    for n in range(5):
        cache.get(ref(n), lambda n=n: b"x" * 100)
    assert cache.entries == 3 and cache.built == 5  # the two least recently used left memory
    cache.get(ref(2), lambda: b"never built")  # a hit moves it to the back of the line
    cache.get(ref(5), lambda: b"x" * 100)
    assert cache.entries == 3 and cache.built == 6
    cache.get(ref(6), lambda: b"y" * 950)  # bytes bound: older entries go until it fits
    assert cache.bytes <= 1000 and cache.entries == 1
    assert len(saved) == 7  # every built conditioning is kept on disk, whatever memory holds


def test_a_client_that_stops_reading_frees_the_device(tmp_path: Path) -> None:
    """An exclusive (whole-stream) lease must not hold the device for a client that takes nothing."""
    script = Script(pieces=40)
    info = double_info("cpu-x", exclusive=True)
    m = _manager(tmp_path, (info, script))
    audio = speak(m, [_plan("cpu-x", info, tmp_path)], "pcm", stall_seconds=0.2)
    assert next(audio)
    wait_for(lambda: m.in_use("cpu-x") == 0 and not m.queue("cpu:cpu-x").in_use)
    with pytest.raises(ClientStalled):
        for _ in audio:
            pass


def test_the_voice_language_reaches_the_engine(app_factory: Callable[..., InProcess]) -> None:
    script = Script(pieces=1)
    studio = app_factory(registry=registry_with((double_info("cloner", cloning=True), script)))
    clip = (Path(__file__).resolve().parents[1] / "voices" / "lark.flac").read_bytes()
    voice = studio.post(
        "/v1/audio/voices",
        data={"name": "Amélie", "transcript": "x", "language": "fr"},
        files={"audio_sample": ("a.flac", clip)},
    ).json()["id"]
    body = {"model": "cloner", "voice": voice, "input": "Bonjour. Au revoir.", "response_format": "pcm"}
    assert studio.post("/v1/audio/speech", json=body).status_code == 200
    assert script.languages == ["fr", "fr"]
