"""Speech synthesis as a service: validate and plan a request, then stream audio under a lease."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Generator, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tts_studio.audio.decode import DecodedAudio, decode_audio
from tts_studio.audio.dsp import OUTPUT_RATE, time_stretch
from tts_studio.config import Settings
from tts_studio.engines.base import AudioChunk, EngineInfo, SynthesisRequest, VoiceReference
from tts_studio.engines.manager import Lease, ModelManager
from tts_studio.errors import EngineUnavailable, InvalidRequest, ModelNotFound
from tts_studio.services.fetch import fetch_audio
from tts_studio.services.library import reference_wav
from tts_studio.services.voices import ResolvedVoice, VoiceCatalog
from tts_studio.text import chunk_text

log = logging.getLogger(__name__)

SPEED_MIN, SPEED_MAX = 0.25, 4.0


@dataclass(frozen=True)
class SpeechOrder:
    """What a caller asks for (already type-checked by the API schema or the UI)."""

    model: str
    input: str
    voice: str
    speed: float = 1.0
    instructions: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    voice_b64: str | None = None  # per-request cloning: inline base64 reference audio
    voice_url: str | None = None  # per-request cloning: reference audio at a public URL (opt-in)


@dataclass(frozen=True)
class SpeechPlan:
    """A validated order: which engine, voice, text chunks, speed split and parameters."""

    engine_id: str
    info: EngineInfo
    voice: ResolvedVoice
    chunks: tuple[str, ...]
    native_speed: float
    tempo: float  # residual pitch-preserving time-stretch applied after the engine
    params: dict[str, Any]
    instructions: str | None
    input_chars: int
    inline_audio: DecodedAudio | None = None  # a per-request reference, written to a temp file when opened
    temp_root: Path | None = None

    @property
    def input_tokens(self) -> int:
        """A rough token count (about 4 characters per token) for SSE usage."""
        return max(1, math.ceil(self.input_chars / 4))


def split_speed(speed: float, native: tuple[float, float] | None) -> tuple[float, float]:
    """(engine speed, residual tempo): engine-native within its range, time-stretch for the rest."""
    if native is None:
        return 1.0, speed
    low, high = native
    engine_speed = min(max(speed, low), high)
    return engine_speed, speed / engine_speed


class SpeechStream:
    """Iterates audio chunks of a plan; holds the engine lease until exhausted or closed."""

    def __init__(self, plan: SpeechPlan, lease: Lease) -> None:
        self.plan = plan
        self.audio_seconds = 0.0
        self.chunks_done = 0
        self._lease = lease
        self._temp_dir: Path | None = None
        self._reference = plan.voice.reference
        if plan.inline_audio is not None:
            self._reference = self._write_inline(plan.inline_audio)
        self._gen = self._generate()

    def _write_inline(self, audio: DecodedAudio) -> VoiceReference:
        """The per-request reference as a temp file; removed when the stream ends."""
        assert self.plan.temp_root is not None
        self.plan.temp_root.mkdir(parents=True, exist_ok=True)
        self._temp_dir = Path(tempfile.mkdtemp(prefix="voice-", dir=self.plan.temp_root))
        wav = reference_wav(audio)
        path = self._temp_dir / "reference.wav"
        path.write_bytes(wav)
        return VoiceReference(
            voice_id="inline", audio_path=path, sample_rate=audio.sample_rate, transcript=None,
            language="en", content_hash=hashlib.sha256(wav).hexdigest(), cache_dir=self._temp_dir / "cache",
            duration=audio.duration,
        )  # fmt: skip

    def _cleanup(self) -> None:
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def __iter__(self) -> Iterator[AudioChunk]:
        return self

    def __next__(self) -> AudioChunk:
        return next(self._gen)

    def close(self) -> None:
        """Stop generating, release the lease and remove temp files (safe to call twice)."""
        self._gen.close()
        self._lease.release()
        self._cleanup()

    def _pieces(self, text: str) -> Iterator[AudioChunk]:
        plan, engine = self.plan, self._lease.engine
        # Exclusive engines hold the device for the whole stream (taken in _generate).
        lock: AbstractContextManager[Any] = nullcontext() if plan.info.exclusive_stream else self._lease.device_lock
        request = SynthesisRequest(
            text=text,
            voice=plan.voice.name,
            speed=plan.native_speed,
            instructions=plan.instructions,
            params=plan.params,
            reference=self._reference,
        )
        pieces = engine.stream(request)
        try:
            while True:
                with lock:  # one inference per device; released between pieces so streams interleave
                    piece = next(pieces, None)
                if piece is None:
                    return
                yield piece
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()

    def _generate(self) -> Generator[AudioChunk, None, None]:
        plan = self.plan
        started = time.perf_counter()
        try:
            if plan.info.exclusive_stream:
                self._lease.device_lock.acquire()
            for index, text in enumerate(plan.chunks):
                for piece in self._pieces(text):
                    if plan.tempo != 1.0:
                        piece = AudioChunk(
                            time_stretch(piece.samples, piece.sample_rate, plan.tempo), piece.sample_rate
                        )
                    self.audio_seconds += piece.duration
                    yield piece
                self.chunks_done = index + 1
                log.debug(
                    "chunk %d/%d synthesized",
                    index + 1,
                    len(plan.chunks),
                    extra={"speech_chunk": index + 1, "speech_chunks": len(plan.chunks)},
                )
        finally:
            if plan.info.exclusive_stream:
                self._lease.device_lock.release()
            self._lease.release()
            self._cleanup()
            elapsed = time.perf_counter() - started
            log.info(
                "speech %s/%s: %d/%d chunks, %.2f s audio in %.2f s",
                plan.engine_id,
                plan.voice.name,
                self.chunks_done,
                len(plan.chunks),
                self.audio_seconds,
                elapsed,
            )

    @property
    def output_tokens(self) -> int:
        """Audio length in 20 ms units, reported as SSE usage."""
        return max(1, round(self.audio_seconds * OUTPUT_RATE / 480))


class SpeechService:
    """Turns orders into audio; used in-process by the API routes and the UI alike."""

    def __init__(self, manager: ModelManager, voices: VoiceCatalog, settings: Settings) -> None:
        self.manager = manager
        self.voices = voices
        self.settings = settings

    def resolve_model(self, model: str) -> tuple[str, dict[str, Any]]:
        """(engine id, default parameters) for an OpenAI model id or an engine id."""
        alias = self.settings.alias_for(model)
        if alias is None:
            if model in self.manager.engine_ids:
                return model, {}
            raise ModelNotFound(f"The model '{model}' does not exist.", param="model")
        candidates = self.settings.model_map[alias]
        for engine_id in candidates:
            if engine_id in self.manager.engine_ids and self.manager.installed(engine_id):
                return engine_id, dict(self.settings.model_params.get(alias, {}))
        raise EngineUnavailable(
            f"No engine for '{model}' is installed (it maps to: {', '.join(candidates)}).", param="model"
        )

    def plan(self, order: SpeechOrder) -> SpeechPlan:
        """Validate everything that can be checked without loading the engine."""
        engine_id, defaults = self.resolve_model(order.model)
        info = self.manager.info(engine_id)
        limit = self.settings.max_input_chars
        if not order.input.strip():
            raise InvalidRequest("'input' must not be empty.", param="input", code="empty_string")
        if len(order.input) > limit:
            raise InvalidRequest(
                f"'input' is {len(order.input)} characters long; the limit is {limit}.",
                param="input",
                code="string_above_max_length",
            )
        if not SPEED_MIN <= order.speed <= SPEED_MAX:
            raise InvalidRequest(
                f"'speed' must be between {SPEED_MIN} and {SPEED_MAX}, got {order.speed}.", param="speed"
            )
        inline = self._inline_audio(order, info)
        voice = ResolvedVoice("inline") if inline is not None else self.voices.resolve(order.voice, info)
        chunks = chunk_text(order.input, max_chars=info.max_chunk_chars)
        if not chunks:
            raise InvalidRequest("'input' has nothing to speak.", param="input")
        native_speed, tempo = split_speed(order.speed, info.speed_range)
        return SpeechPlan(
            engine_id=engine_id,
            info=info,
            voice=voice,
            chunks=tuple(chunks),
            native_speed=native_speed,
            tempo=tempo,
            params=info.validate_params({**defaults, **order.extra}),
            instructions=order.instructions if info.instructions else None,
            input_chars=len(order.input),
            inline_audio=inline,
            temp_root=self.settings.cache_dir / "tmp",
        )

    def _inline_audio(self, order: SpeechOrder, info: EngineInfo) -> DecodedAudio | None:
        """Decode `voice_b64` / `voice_url` (validated like an upload), or None when neither is given."""
        if order.voice_b64 is None and order.voice_url is None:
            return None
        param = "voice_b64" if order.voice_b64 is not None else "voice_url"
        if not info.cloning:
            cloning = [e for e in self.manager.engine_ids if self.manager.info(e).cloning]
            can = ", ".join(cloning) or "none installed (a cloning engine such as chatterbox or voxcpm is needed)"
            raise InvalidRequest(
                f"'{param}' clones a voice, which the engine '{info.id}' cannot do. Engines that can: {can}.",
                param=param,
                code="voice_not_supported",
            )
        limits = self.voices.library.limits
        if order.voice_b64 is not None:
            try:
                data = base64.b64decode(order.voice_b64.split(",", 1)[-1], validate=True)
            except (binascii.Error, ValueError):
                raise InvalidRequest("'voice_b64' is not valid base64.", param=param) from None
        else:
            if not self.settings.voice_url_enabled:
                raise InvalidRequest(
                    "'voice_url' is disabled on this server (setting voice_url_enabled).",
                    param=param,
                    code="voice_url_disabled",
                )
            assert order.voice_url is not None
            data = fetch_audio(order.voice_url, limits.max_bytes)
        return decode_audio(data, limits, param=param)

    def open(self, plan: SpeechPlan) -> SpeechStream:
        """Load the engine if needed (blocking) and return the audio stream holding its lease."""
        return SpeechStream(plan, self.manager.acquire(plan.engine_id))
