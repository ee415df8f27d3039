"""An engine as a Ray Serve deployment. `EngineReplica` runs the real engine (behind a one-engine model manager)
on whichever node has the resources it asks for; `RemoteEngine` is the engine protocol over a streaming handle,
so the speech job's lease becomes a handle call and nothing above it changes. Voice references travel with the
request: engine nodes need no shared filesystem."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any

from tts_studio.cluster.errors import translate
from tts_studio.config import Settings
from tts_studio.engines.base import AudioChunk, EngineInfo, SynthesisRequest, VoiceReference
from tts_studio.engines.manager import Lease, ModelManager
from tts_studio.engines.registry import default_registry
from tts_studio.offline import disable_telemetry
from tts_studio.services.library import atomic_write_bytes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteCall:
    """What crosses to an engine replica: the request, and the reference audio itself (not a path)."""

    request: SynthesisRequest
    reference_audio: bytes | None = None


def remote_call(request: SynthesisRequest) -> RemoteCall:
    """The request with its voice reference's audio read in (paths mean nothing on another host)."""
    reference = request.reference
    return RemoteCall(request, reference.audio_path.read_bytes() if reference is not None else None)


class RemoteEngine:
    """The engine protocol over a Serve deployment. load() only takes a handle: the replicas load the weights
    (and autoscaling, not idle unloads, decides when they go)."""

    def __init__(self, info: EngineInfo, deployment: str, app_name: str) -> None:
        self.info = info
        self._deployment, self._app_name = deployment, app_name
        self._handle: Any = None

    def load(self, device: str) -> None:
        from ray import serve

        self._handle = serve.get_deployment_handle(self._deployment, app_name=self._app_name).options(stream=True)

    def unload(self) -> None:
        self._handle = None

    def stream(self, request: SynthesisRequest) -> Iterator[AudioChunk]:
        """Pieces as the replica makes them (blocking: called on the speech job's worker thread). Closing this
        generator cancels the call: the replica's stream stops and frees its lease."""
        if self._handle is None:
            raise RuntimeError("RemoteEngine.stream before load()")
        responses = None
        try:
            responses = self._handle.stream.remote(remote_call(request))
            yield from responses
        except Exception as exc:
            raise translate(self.info.id, exc) from None
        finally:
            if responses is not None:
                with contextlib.suppress(Exception):  # a call that failed re-raises its error here: told already
                    responses.cancel()


class _Steps:
    """One stream on a replica, driven a piece at a time from worker threads; `close()` waits for a piece in
    flight, closes the engine's generator and ends the lease, exactly once."""

    def __init__(self, manager: ModelManager, engine_id: str, request: SynthesisRequest) -> None:
        self._manager, self._engine_id, self._request = manager, engine_id, request
        self._lock = threading.Lock()
        self._lease: Lease | None = None
        self._pieces: Iterator[AudioChunk] | None = None
        self._closed = False

    def next(self) -> AudioChunk | None:
        with self._lock:
            if self._closed:
                return None
            if self._lease is None:
                self._lease = self._manager.acquire(self._engine_id)
                self._pieces = self._lease.engine.stream(self._request)
            assert self._pieces is not None
            with self._lease.turn():
                return next(self._pieces, None)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pieces, self._pieces = self._pieces, None
            try:
                close = getattr(pieces, "close", None)
                if close is not None:
                    close()
            finally:
                if self._lease is not None:
                    self._lease.release()


class EngineReplica:
    """The body of one engine's deployment (decorated in `cluster.deploy`): the engine, loaded on first use on
    this replica's device; `stats()` says what it is doing (tests and the bench watch it)."""

    def __init__(self, engine_id: str, settings: Settings) -> None:
        disable_telemetry(settings.cache_dir)
        self.engine_id = engine_id
        self.manager = ModelManager({engine_id: default_registry()[engine_id]}, settings)
        self._references = settings.cache_dir / "ray-references"
        self.active = self.served = self.cancelled = self.failed = 0

    async def stream(self, call: RemoteCall) -> AsyncIterator[AudioChunk]:
        request = await asyncio.to_thread(self._localise, call)
        steps = _Steps(self.manager, self.engine_id, request)
        self.active += 1
        try:
            while (chunk := await asyncio.to_thread(steps.next)) is not None:
                yield chunk
            self.served += 1
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled += 1  # the caller left (its client hung up): stop after the piece in flight
            raise
        except Exception:
            self.failed += 1
            raise
        finally:
            self.active -= 1
            # A piece may still be running in its thread: the lease ends once it is done, off this loop.
            threading.Thread(target=steps.close, name="engine-stream-close", daemon=True).start()

    def stats(self) -> dict[str, Any]:
        import ray

        return {
            "engine": self.engine_id,
            "active": self.active,
            "served": self.served,
            "cancelled": self.cancelled,
            "failed": self.failed,
            "leases": self.manager.in_use(self.engine_id),
            "node_id": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
        }

    def _localise(self, call: RemoteCall) -> SynthesisRequest:
        """The request with its reference audio stored on this node (once per content hash)."""
        reference = call.request.reference
        if reference is None or call.reference_audio is None:
            return call.request
        folder = self._references / reference.content_hash[:32]
        path = folder / f"reference{reference.audio_path.suffix or '.wav'}"
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, call.reference_audio)
        local: VoiceReference = replace(reference, audio_path=path, cache_dir=folder / "cache")
        return replace(call.request, reference=local)
