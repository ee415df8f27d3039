"""The one speech pipeline: text chunks -> engine pieces (under one lease each) -> one time-stretch ->
one encoder -> bytes. Every caller (the speech route, SSE, the UI's long render, background jobs) uses
`speak()`. Synthesis runs on its own thread feeding a bounded queue, so it overlaps with encoding and
with sending; closing the generator stops synthesis within one piece and releases the lease."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from tts_studio.audio.decode import DecodedAudio
from tts_studio.audio.dsp import OUTPUT_RATE, stretch_stream
from tts_studio.audio.encode import encode_stream
from tts_studio.engines.base import AudioChunk, SynthesisRequest, VoiceReference
from tts_studio.engines.manager import Lease, ModelManager
from tts_studio.engines.scheduler import Priority
from tts_studio.errors import StudioError
from tts_studio.services.library import reference_wav
from tts_studio.services.plan import SpeechPlan
from tts_studio.services.text_feed import TextFeed

log = logging.getLogger(__name__)
T = TypeVar("T")
QUEUE_DEPTH = 8  # audio pieces synthesised ahead of the encoder


class JobCancelled(Exception):
    """The job was cancelled (its caller left or asked to stop): the consumer's next step ends it."""


class Cancellation:
    """Set once, from any thread; wakes whoever asked to hear it (a consumer waiting on its queue), so
    nothing polls for it."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._wakers: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        with self._lock:
            self._event.set()
            wakers, self._wakers = self._wakers, []
        for wake in wakers:
            wake()

    def on_set(self, wake: Callable[[], None]) -> None:
        with self._lock:
            if not self._event.is_set():
                self._wakers.append(wake)
                return
        wake()


class ClientStalled(StudioError):
    status = 408
    type = "invalid_request_error"
    code = "client_stalled"


@dataclass
class Progress:
    """Filled in as the pipeline runs (callers read it for SSE usage and progress bars)."""

    chunks_done: int = 0
    chunks_total: int = 0
    audio_seconds: float = 0.0

    @property
    def output_tokens(self) -> int:
        """Audio length in 20 ms units, reported as SSE usage."""
        return max(1, round(self.audio_seconds * OUTPUT_RATE / 480))


def _inline_reference(audio: DecodedAudio, root: Path) -> tuple[Path, VoiceReference]:
    """A per-request reference written to a temp folder (removed when its stream ends)."""
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="voice-", dir=root))
    try:
        wav = reference_wav(audio)
        path = folder / "reference.wav"
        path.write_bytes(wav)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    reference = VoiceReference(
        voice_id="inline",
        audio_path=path,
        sample_rate=audio.sample_rate,
        transcript=None,
        language="en",
        content_hash=hashlib.sha256(wav).hexdigest(),
        cache_dir=folder / "cache",
        duration=audio.duration,
    )
    return folder, reference


def synthesize(
    manager: ModelManager, plan: SpeechPlan, priority: Priority, progress: Progress
) -> Generator[AudioChunk, None, None]:
    """Engine pieces for every chunk of `plan`. The inline reference is written before the lease is taken
    (a failed write holds nothing); the lease is released and temp files removed on every path. A plan fed
    by an LLM (a TextFeed) holds the engine only while text is ready: never while the LLM writes."""
    folder: Path | None = None
    lease: Lease | None = None
    fed = isinstance(plan.chunks, TextFeed)
    started = time.perf_counter()
    try:
        reference = plan.voice.reference
        if plan.inline_audio is not None:
            assert plan.temp_root is not None
            folder, reference = _inline_reference(plan.inline_audio, plan.temp_root)
        if not fed:
            lease = manager.acquire(plan.engine_id, priority)
        for text in plan.chunks:
            if lease is None:
                lease = manager.acquire(plan.engine_id, priority)
            request = SynthesisRequest(
                text=text,
                voice=plan.voice.name,
                speed=plan.native_speed,
                language=plan.language,
                instructions=plan.instructions,
                params=plan.params,
                reference=reference,
                source=plan.source,
            )
            pieces = lease.engine.stream(request)
            try:
                while True:
                    with lease.turn():  # the device for one piece (or already held for the stream)
                        piece = next(pieces, None)
                    if piece is None:
                        break
                    yield piece
            finally:
                close: Callable[[], Any] | None = getattr(pieces, "close", None)
                if close is not None:
                    close()
            progress.chunks_done += 1
            if fed and isinstance(plan.chunks, TextFeed) and plan.chunks.ready == 0:
                lease.release()  # the LLM is still writing: let others use the engine meanwhile
                lease = None
    finally:
        if lease is not None:
            lease.release()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        log.info(
            "speech %s/%s: %d/%d chunks in %.2f s",
            plan.engine_id,
            plan.voice.name,
            progress.chunks_done,
            progress.chunks_total,
            time.perf_counter() - started,
        )


class Prefetched(Generic[T]):
    """The iterator `make()` run on its own thread, up to QUEUE_DEPTH items ahead of the consumer; it starts
    at once, so whatever the consumer sets up meanwhile (an encoder) overlaps with it. `close()` stops the
    producer after its current item; a consumer that takes nothing for `stall_seconds` makes the producer
    give up (and let go of its engine)."""

    def __init__(
        self, make: Callable[[], Iterator[T]], stall_seconds: float, name: str, stop: Cancellation | None = None
    ) -> None:
        self._make = make
        self._stall = stall_seconds
        self._items: queue.Queue[tuple[str, Any]] = queue.Queue(QUEUE_DEPTH)
        self._stop = threading.Event()  # close(): the producer stops
        self._cancel = stop if stop is not None else Cancellation()  # set from any thread: both sides stop
        self._finished = threading.Event()
        self._outcome: list[BaseException] = []
        self._done = False
        self._worker = threading.Thread(target=self._produce, name=name, daemon=True)
        self._worker.start()
        self._cancel.on_set(self._wake)

    def _wake(self) -> None:
        """A cancel wakes a consumer waiting on the queue (a full queue has no one waiting on it)."""
        with contextlib.suppress(queue.Full):
            self._items.put_nowait(("cancelled", None))

    def _put(self, message: tuple[str, Any]) -> bool:
        deadline = time.monotonic() + self._stall
        while not self._stop.is_set() and not self._cancel.is_set():
            try:
                self._items.put(message, timeout=max(0.0, min(1.0, deadline - time.monotonic())))
            except queue.Full:
                if time.monotonic() >= deadline:
                    self._outcome.append(ClientStalled(f"The client took nothing for {self._stall:.0f} s."))
                    return False
                continue
            time.sleep(0)  # hand the GIL over: the consumer is waiting for exactly this item
            return True
        return False

    def _produce(self) -> None:
        source: Iterator[T] | None = None
        try:
            source = self._make()
            for item in source:
                if not self._put(("item", item)):
                    return
            self._put(("end", None))
        except BaseException as exc:
            self._outcome.append(exc)
            self._put(("error", exc))
        finally:
            close: Callable[[], Any] | None = getattr(source, "close", None)
            if close is not None:
                close()
            self._finished.set()

    def __iter__(self) -> Prefetched[T]:
        return self

    def __next__(self) -> T:
        while not self._done:
            if self._cancel.is_set():
                self._done = True
                raise JobCancelled("cancelled")
            try:
                kind, value = self._items.get(timeout=1.0)
            except queue.Empty:
                if self._cancel.is_set():
                    continue  # reported as JobCancelled at the top of the loop
                if self._finished.is_set() and self._items.empty():
                    self._done = True
                    raise self._outcome[0] if self._outcome else RuntimeError("synthesis ended early") from None
                continue
            if kind == "item":
                item: T = value
                return item
            if kind == "cancelled":
                continue  # reported as JobCancelled at the top of the loop
            self._done = True
            if kind == "error":
                raise value
        raise StopIteration

    def close(self) -> None:
        """Stop the producer (after its current item) and wait for it; safe to call twice."""
        self._done = True
        self._stop.set()
        while True:  # free the queue so a blocked put returns and sees the stop
            try:
                self._items.get_nowait()
            except queue.Empty:
                break
        self._worker.join()


def speak(
    manager: ModelManager,
    plans: Sequence[SpeechPlan],
    fmt: str,
    *,
    priority: Priority = Priority.INTERACTIVE,
    progress: Progress | None = None,
    stall_seconds: float = 60.0,
    sample_rate: int | None = None,
    stop: Cancellation | None = None,
) -> Generator[bytes, None, None]:
    """Encoded audio for `plans` spoken one after another (the UI's long texts are several plans),
    bytes as soon as the encoder has them. Errors before the first byte propagate to the caller. Setting
    `stop` (from any thread) ends synthesis within one piece and the consumer with JobCancelled."""
    progress = progress if progress is not None else Progress()
    progress.chunks_total = sum(plan.chunk_count for plan in plans)
    tempo = plans[0].tempo

    def pieces() -> Generator[AudioChunk, None, None]:
        for plan in plans:
            yield from synthesize(manager, plan, priority, progress)  # close() reaches the lease holder

    chunks = Prefetched(lambda: stretch_stream(pieces(), tempo), stall_seconds, f"synth-{plans[0].engine_id}", stop)

    def counted() -> Iterator[AudioChunk]:
        for chunk in chunks:
            progress.audio_seconds += chunk.duration
            yield chunk

    try:
        yield from encode_stream(counted(), fmt, sample_rate or OUTPUT_RATE)
    finally:
        chunks.close()
