"""Designed voices: describe a voice in words, hear candidates, keep one as a library voice.

An engine with a design mode (VoxCPM2: `instructions` shape the voice of its reference-free `default` voice)
speaks a sample text once per candidate, each with its own seed, through the one speech job. Candidates stay
in memory for a while (bounded in count and age); saving one stores its audio as the reference and its text
as the transcript of a new library voice, marked as designed, so every cloning engine speaks with it.
"""

from __future__ import annotations

import io
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import soundfile as sf  # type: ignore[import-untyped]  # no stubs; reads the WAV header

from tts_studio.errors import EngineUnavailable, InvalidRequest, NotFound
from tts_studio.services.job import SpeechJobs
from tts_studio.services.library import Voice, VoiceLibrary, clean_transcript, name_key
from tts_studio.services.plan import SpeechOrder

DESIGN_ENGINES = ("voxcpm2",)  # engines with a design mode, preferred first
DEFAULT_TEXT = (
    "Hello! This is the voice you described, reading a few sentences so you can hear it. "
    "If you like it, keep it and every cloning engine can speak with it."
)
MAX_CANDIDATES = 4  # per request
MAX_INSTRUCTIONS = 1000
MAX_TEXT = 600  # a reference clip of about 5-30 s
KEEP_CANDIDATES = 16  # kept in memory at once (the oldest go first)
KEEP_SECONDS = 30 * 60.0  # a candidate not saved within this is forgotten


@dataclass(frozen=True)
class Candidate:
    """One designed take: WAV audio and what made it."""

    id: str
    audio: bytes  # WAV, 24 kHz mono
    text: str
    instructions: str
    engine_id: str
    seed: int
    duration: float
    created_at: float  # epoch seconds

    @property
    def expires_at(self) -> int:
        return int(self.created_at + KEEP_SECONDS)


class CandidateStore:
    """Candidates by id, at most `limit` of them and none older than `max_age` seconds."""

    def __init__(self, limit: int = KEEP_CANDIDATES, max_age: float = KEEP_SECONDS) -> None:
        self.limit = limit
        self.max_age = max_age
        self._items: OrderedDict[str, Candidate] = OrderedDict()
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        for key in [k for k, c in self._items.items() if now - c.created_at > self.max_age]:
            del self._items[key]
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def put(self, candidate: Candidate) -> None:
        with self._lock:
            self._items[candidate.id] = candidate
            self._expire(time.time())

    def get(self, candidate_id: str) -> Candidate:
        with self._lock:
            self._expire(time.time())
            found = self._items.get(candidate_id)
        if found is None:
            raise NotFound(
                f"The designed voice candidate '{candidate_id}' does not exist or has expired "
                f"(candidates are kept {self.max_age / 60:.0f} minutes); design it again.",
                param="candidate_id",
                code="candidate_not_found",
            )
        return found

    def __len__(self) -> int:
        with self._lock:
            self._expire(time.time())
            return len(self._items)


class VoiceDesigner:
    """Design candidates and save them; one per app, shared by the API and the UI."""

    def __init__(self, jobs: SpeechJobs, library: VoiceLibrary, store: CandidateStore | None = None) -> None:
        self.jobs = jobs
        self.library = library
        self.store = store if store is not None else CandidateStore()

    def design_engines(self) -> list[str]:
        """Installed engines that can design a voice from words (their own voice shaped by instructions)."""
        manager = self.jobs.speech.manager
        known = [e for e in DESIGN_ENGINES if e in manager.engine_ids]
        others = [e for e in manager.engine_ids if e not in known and manager.info(e).instructions]
        return [e for e in [*known, *others] if manager.installed(e) and manager.info(e).voices]

    def engine_for(self, model: str | None) -> str:
        """The engine to design with: `model` (an engine or OpenAI id) when given, else the first installed;
        503 naming what to install when there is none."""
        manager = self.jobs.speech.manager
        if model:
            engine_id = self.jobs.speech.resolve_model(model)[0]
            info = manager.info(engine_id)
            if not info.instructions or not info.voices:
                can = ", ".join(self.design_engines()) or "none installed"
                raise InvalidRequest(
                    f"The engine '{engine_id}' has no voice design mode. Engines that have: {can}.",
                    param="model",
                    code="design_not_supported",
                )
            return engine_id
        engines = self.design_engines()
        if engines:
            return engines[0]
        hints = sorted({manager.install_hint(e) for e in DESIGN_ENGINES if e in manager.engine_ids})
        how = " or ".join(hints) or "pip install 'tts-studio[voxcpm]'"
        raise EngineUnavailable(
            f"Designing a voice from a description needs VoxCPM2, which is not installed. Install it ({how}, or the "
            "Install button on the Models tab), then restart the studio.",
            param="model",
            code="engine_not_installed",
        )

    @staticmethod
    def check(instructions: str, text: str | None, n: int) -> tuple[str, str]:
        """(instructions, text) cleaned, or a 400 naming what is wrong."""
        described = clean_transcript(instructions)
        if not described:
            raise InvalidRequest(
                "'instructions' must describe the voice (e.g. 'a warm, low female voice, speaking slowly').",
                param="instructions",
                code="empty_string",
            )
        if len(described) > MAX_INSTRUCTIONS:
            raise InvalidRequest(f"'instructions' is longer than {MAX_INSTRUCTIONS} characters.", param="instructions")
        sample = clean_transcript(text) if text is not None else ""
        sample = sample or DEFAULT_TEXT
        if len(sample) > MAX_TEXT:
            raise InvalidRequest(
                f"'text' is longer than {MAX_TEXT} characters (a reference clip is best at 5-30 s).", param="text"
            )
        if not 1 <= n <= MAX_CANDIDATES:
            raise InvalidRequest(f"'n' must be between 1 and {MAX_CANDIDATES}, got {n}.", param="n")
        return described, sample

    async def design(
        self, instructions: str, text: str | None = None, n: int = 1, model: str | None = None, seed: int | None = None
    ) -> list[Candidate]:
        """`n` candidates, each the sample text spoken with its own seed (one speech job each)."""
        described, sample = self.check(instructions, text, n)
        engine_id = self.engine_for(model)
        voice = self.jobs.speech.manager.info(engine_id).voices[0]
        first_seed = seed if seed is not None else secrets.randbelow(2**31)
        made = []
        for index in range(n):
            take_seed = (first_seed + index) % 2**32
            order = SpeechOrder(
                model=engine_id, input=sample, voice=voice, instructions=described, extra={"seed": take_seed}
            )
            audio, _ = await self.jobs.speak_all(order, "wav")
            candidate = Candidate(
                id=f"vdc_{uuid.uuid4().hex[:24]}",
                audio=audio,
                text=sample,
                instructions=described,
                engine_id=engine_id,
                seed=take_seed,
                duration=round(float(sf.info(io.BytesIO(audio)).duration), 3),
                created_at=time.time(),
            )
            self.store.put(candidate)
            made.append(candidate)
        return made

    def _free_name(self, instructions: str) -> str:
        base = f"Designed: {instructions[:60].rstrip()}"
        taken = {name_key(v.name) for v in self.library.all()}
        name, number = base, 2
        while name_key(name) in taken:
            name, number = f"{base} ({number})", number + 1
        return name

    def save(self, candidate_id: str, name: str | None = None, language: str | None = None) -> Voice:
        """Keep a candidate as a library voice (blocking: an fsynced write)."""
        candidate = self.store.get(candidate_id)
        return self.library.add(
            name if name and name.strip() else self._free_name(candidate.instructions),
            candidate.audio,
            filename="designed.wav",
            language=language or "en",
            transcript=candidate.text,
            consent=True,  # a made-up voice: nobody's to consent
            design=candidate.instructions,
        )
