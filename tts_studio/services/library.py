"""The voice library: user voices on disk with atomic writes, plus the read-only bundled voices.

Layout under `root` (the user data dir's `voices/`):
    index.json                 the source of truth, replaced atomically, written last
    voice_<hex>/original.<ext> the upload as received
    voice_<hex>/reference.wav  mono 16-bit, normalised once; what engines clone from
    voice_<hex>/cache/         per-engine conditioning caches, named by the audio's content hash
A crash leaves at most a `.tmp-*` folder or a folder missing from the index; both are removed on open.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf  # type: ignore[import-untyped]  # no stubs; used for WAV/FLAC headers

from tts_studio.audio.decode import AudioLimits, DecodedAudio, decode_audio
from tts_studio.engines.base import VoiceReference
from tts_studio.errors import InvalidRequest, NotFound
from tts_studio.services.file_watch import FileStamp, WatchedJson

log = logging.getLogger(__name__)

Transcribe = Callable[[DecodedAudio, str], str]
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_NAME = 100
MAX_LANGUAGE = 16
MAX_TRANSCRIPT = 4096
_LANGUAGE = re.compile(r"[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*")


@dataclass(frozen=True)
class Voice:
    """A library voice's metadata (what index.json stores)."""

    id: str
    name: str
    language: str
    transcript: str
    duration: float
    sample_rate: int
    content_hash: str
    created_at: int
    source: str  # "upload" | "bundled" | "designed"
    consent: bool = False
    transcript_source: str = "none"  # "user" | "auto" | "none"
    original_ext: str = "wav"
    design: str = ""  # a designed voice: the description it was designed from

    @property
    def read_only(self) -> bool:
        return self.source == "bundled"


# Characters that do not show as themselves: a name holding one could pass for another voice's name.
_BIDI = frozenset([*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C])
_ZERO_WIDTH = frozenset([0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF])
_HIDDEN_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "an invisible formatting character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Cs": "an unpaired surrogate",
}


def hidden_character(text: str) -> str | None:
    """What the first character of `text` that would not show as itself is, and where; None if none."""
    for index, char in enumerate(text, start=1):
        point = ord(char)
        if point in _BIDI:
            kind: str | None = "a bidirectional control character"
        elif point in _ZERO_WIDTH:
            kind = "a zero-width character"
        else:
            kind = _HIDDEN_CATEGORIES.get(unicodedata.category(char))
        if kind is not None:
            label = unicodedata.name(char, "")
            return f"{kind} (U+{point:04X}{f' {label}' if label else ''}) at character {index}"
    return None


def name_key(name: str) -> str:
    """Names compare by this: case-insensitive and blind to how accents are encoded (composed or not)."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


def clean_name(name: str | None) -> str:
    """Display names show what they are: no control, invisible or direction-changing characters (400),
    NFC-normalised, trimmed, 1..100 characters. Names already stored are not checked again."""
    hidden = hidden_character(name or "")
    if hidden is not None:
        raise InvalidRequest(
            f"'name' contains {hidden}; a voice name must be visible text only "
            "(no control, zero-width or bidirectional characters).",
            param="name",
        )
    cleaned = unicodedata.normalize("NFC", name or "").strip()
    if not cleaned:
        raise InvalidRequest("'name' must not be empty.", param="name", code="empty_string")
    if len(cleaned) > MAX_NAME:
        raise InvalidRequest(f"'name' is longer than {MAX_NAME} characters.", param="name")
    return cleaned


def clean_language(language: str | None) -> str:
    """A language tag such as 'en' or 'pt-BR' (the same rule on upload and edit)."""
    cleaned = (language or "").strip() or "en"
    if len(cleaned) > MAX_LANGUAGE or not _LANGUAGE.fullmatch(cleaned):
        raise InvalidRequest(
            f"'language' must be a language tag such as 'en' or 'pt-BR' (at most {MAX_LANGUAGE} characters).",
            param="language",
        )
    return cleaned


def clean_transcript(transcript: str | None) -> str:
    cleaned = _CONTROL.sub(" ", transcript or "").strip()
    if len(cleaned) > MAX_TRANSCRIPT:
        raise InvalidRequest(f"'transcript' is longer than {MAX_TRANSCRIPT} characters.", param="transcript")
    return cleaned


def _extension(filename: str | None) -> str:
    suffix = Path(filename or "").suffix.lower().lstrip(".")
    return suffix if re.fullmatch(r"[a-z0-9]{1,5}", suffix) else "bin"


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(path: Path, data: bytes) -> FileStamp:
    """Write next to `path`, fsync, then rename over it: readers see the old or the new file, never half.
    Returns the new file's stamp (a rename keeps inode and mtime), taken before another writer could move it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            stamp = FileStamp.of(os.fstat(f.fileno()))
        os.replace(tmp, path)  # noqa: PTH105 - the atomic rename, spelled as the os call on purpose
        _fsync_dir(path.parent)
        return stamp
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_json(path: Path, payload: Any) -> FileStamp:
    """JSON written with `atomic_write_bytes`."""
    return atomic_write_bytes(path, json.dumps(payload, indent=2, ensure_ascii=False).encode("utf-8"))


def _parse_index(data: Any) -> dict[str, Voice]:
    return {v["id"]: Voice(**v) for v in data.get("voices", [])}


def reference_wav(audio: DecodedAudio) -> bytes:
    """The normalised reference: mono 16-bit WAV at the clip's own rate, peak-normalised to -1 dBFS."""
    peak = float(np.abs(audio.samples).max()) or 1.0
    samples = audio.samples * (0.89 / peak)
    buf = io.BytesIO()
    sf.write(buf, samples, audio.sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class VoiceLibrary:
    """User voices (read-write) and bundled voices (read-only), one service for the API and the UI."""

    def __init__(
        self,
        root: Path,
        bundled_dir: Path | None = None,
        limits: AudioLimits | None = None,
        transcribe: Transcribe | None = None,
        reserved_names: Iterable[str] = (),
        recover: bool = True,  # False: a reader beside the owner that writes (its writes in flight are not leftovers)
    ) -> None:
        self.root = root
        self.reserved_names = frozenset(name_key(name) for name in reserved_names)
        self.limits = limits or AudioLimits()
        self._transcribe = transcribe
        self._lock = threading.RLock()
        self.root.mkdir(parents=True, exist_ok=True)
        self._index_path = root / "index.json"
        self._bundled_files: dict[str, Path] = {}
        self._bundled = self._load_bundled(bundled_dir)
        self._index: WatchedJson[dict[str, Voice]] = WatchedJson(self._index_path, _parse_index, dict)
        if recover:
            self.recover()

    # -- loading and recovery -------------------------------------------------------------
    @property
    def _voices(self) -> dict[str, Voice]:
        """The index on disk as it is now (another process may rewrite it); read-only: see `_write_index`."""
        return self._index.current()

    def _load_bundled(self, bundled_dir: Path | None) -> dict[str, Voice]:
        manifest = bundled_dir / "voices.json" if bundled_dir else None
        if manifest is None or not manifest.exists():
            return {}
        entries = json.loads(manifest.read_text(encoding="utf-8"))["voices"]
        voices = {}
        for entry in entries:
            path = manifest.parent / entry["file"]
            info = sf.info(str(path))
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            voices[entry["id"]] = Voice(
                id=entry["id"],
                name=entry["name"],
                language=entry.get("language", "en"),
                transcript=entry.get("transcript", ""),
                duration=round(info.duration, 3),
                sample_rate=info.samplerate,
                content_hash=digest,
                created_at=0,
                source="bundled",
                consent=True,
                transcript_source="user" if entry.get("transcript") else "none",
                original_ext=Path(entry["file"]).suffix.lstrip("."),
            )
            self._bundled_files[entry["id"]] = path
        return voices

    def recover(self) -> list[str]:
        """Remove leftovers of interrupted writes: temp folders and folders the index does not list."""
        removed = []
        with self._lock:
            for path in self.root.iterdir():
                orphan = path.is_dir() and path.name.startswith("voice_") and path.name not in self._voices
                if path.name.startswith(".tmp-") or orphan:
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path.name)
                elif path.is_file() and path.name.startswith(".index.json."):
                    path.unlink(missing_ok=True)
                    removed.append(path.name)
        if removed:
            log.warning("Voice library: removed leftovers of interrupted writes: %s", ", ".join(removed))
        return removed

    def _write_index(self, voices: dict[str, Voice]) -> None:
        stamp = atomic_write_json(self._index_path, {"version": 1, "voices": [asdict(v) for v in voices.values()]})
        self._index.written(voices, stamp)

    # -- reading --------------------------------------------------------------------------
    def all(self) -> list[Voice]:
        with self._lock:
            return [*self._bundled.values(), *sorted(self._voices.values(), key=lambda v: v.created_at)]

    def get(self, voice_id: str) -> Voice | None:
        with self._lock:
            return self._voices.get(voice_id) or self._bundled.get(voice_id)

    def require(self, voice_id: str) -> Voice:
        voice = self.get(voice_id)
        if voice is None:
            raise NotFound(f"The voice '{voice_id}' does not exist.", param="voice_id", code="voice_not_found")
        return voice

    def find(self, ref: str) -> Voice | None:
        """By id, else by a unique display name (case-insensitive)."""
        voice = self.get(ref)
        if voice is not None:
            return voice
        key = name_key(ref.strip())
        matches = [v for v in self.all() if name_key(v.name) == key]
        return matches[0] if len(matches) == 1 else None

    def audio_path(self, voice_id: str, original: bool = False) -> Path:
        voice = self.require(voice_id)
        if voice.read_only:
            return self._bundled_files[voice_id]
        return self.root / voice_id / (f"original.{voice.original_ext}" if original else "reference.wav")

    def reference(self, voice_id: str) -> VoiceReference:
        voice = self.require(voice_id)
        cache = self.root / "_bundled_cache" / voice_id if voice.read_only else self.root / voice_id / "cache"
        return VoiceReference(
            voice_id=voice.id,
            audio_path=self.audio_path(voice_id),
            sample_rate=voice.sample_rate,
            transcript=voice.transcript or None,
            language=voice.language,
            content_hash=voice.content_hash,
            cache_dir=cache,
            duration=voice.duration,
        )

    # -- writing --------------------------------------------------------------------------
    def _check_unique(self, name: str, except_id: str | None = None) -> None:
        if name_key(name) in self.reserved_names:
            raise InvalidRequest(
                f"'{name}' is an OpenAI or engine voice name; a voice of yours cannot take it (choose another).",
                param="name",
                code="reserved_name",
            )
        for voice in self.all():
            if voice.id != except_id and name_key(voice.name) == name_key(name):
                raise InvalidRequest(
                    f"A voice named '{voice.name}' already exists; choose another name.",
                    param="name",
                    code="duplicate_name",
                )

    def transcribe(self, audio: DecodedAudio, language: str) -> str:
        """The transcript Whisper hears in the voice's language, or '' when none can be had here (a language
        other than English without the multilingual Whisper downloaded, or auto-transcription off)."""
        if self._transcribe is None:
            return ""
        return self._transcribe(audio, language).strip()

    def add(
        self,
        name: str | None,
        data: bytes,
        filename: str | None = None,
        language: str = "en",
        transcript: str | None = None,
        consent: bool = False,
        transcript_is_auto: bool = False,
        design: str | None = None,
    ) -> Voice:
        """Validate, normalise and store a voice; all or nothing. `transcript_is_auto`: the given
        transcript is Whisper's, unedited (the UI fills it in before saving). `design`: the description a
        designed voice was made from (it is then marked as designed)."""
        display = clean_name(name)
        self._check_unique(display)
        language = clean_language(language)
        text = clean_transcript(transcript)
        audio = decode_audio(data, self.limits)
        source = ("auto" if transcript_is_auto else "user") if text else "none"
        if not text:
            text = self.transcribe(audio, language)
            source = "auto" if text else "none"
        wav = reference_wav(audio)
        voice = Voice(
            id=f"voice_{uuid.uuid4().hex[:24]}",
            name=display,
            language=language,
            transcript=text,
            duration=round(audio.duration, 3),
            sample_rate=audio.sample_rate,
            content_hash=hashlib.sha256(wav).hexdigest(),
            created_at=int(time.time()),
            source="designed" if design else "upload",
            consent=consent,
            transcript_source=source,
            original_ext=_extension(filename),
            design=design or "",
        )
        with self._lock:
            self._check_unique(display)  # again, under the lock
            staging = self.root / f".tmp-{voice.id}"
            final = self.root / voice.id
            try:
                staging.mkdir()
                _write_file(staging / f"original.{voice.original_ext}", data)
                _write_file(staging / "reference.wav", wav)
                _fsync_dir(staging)
                staging.replace(final)
                self._write_index({**self._voices, voice.id: voice})  # the freshest index, plus this voice
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                shutil.rmtree(final, ignore_errors=True)
                raise
        log.info("Voice %s (%s) added: %.1f s, transcript %s", voice.id, display, voice.duration, source)
        return voice

    def update(
        self,
        voice_id: str,
        name: str | None = None,
        transcript: str | None = None,
        language: str | None = None,
    ) -> Voice:
        with self._lock:
            voice = self.require(voice_id)
            if voice.read_only:
                raise InvalidRequest("Bundled voices cannot be changed.", param="voice_id", code="voice_read_only")
            changes: dict[str, Any] = {}
            if name is not None and name != voice.name:  # an unchanged name is kept, even one stored before the rule
                changes["name"] = clean_name(name)
                self._check_unique(changes["name"], except_id=voice_id)
            if transcript is not None:
                changes["transcript"] = clean_transcript(transcript)
                changes["transcript_source"] = "user" if changes["transcript"] else "none"
            if language is not None:
                changes["language"] = clean_language(language)
            updated = replace(voice, **changes)
            self._write_index({**self._voices, voice_id: updated})
            return updated

    def delete(self, voice_id: str) -> Voice:
        with self._lock:
            voice = self.require(voice_id)
            if voice.read_only:
                raise InvalidRequest("Bundled voices cannot be deleted.", param="voice_id", code="voice_read_only")
            remaining = {k: v for k, v in self._voices.items() if k != voice_id}
            self._write_index(remaining)  # the index first: a crash now leaves an orphan folder, removed on open
            shutil.rmtree(self.root / voice_id, ignore_errors=True)
        log.info("Voice %s (%s) deleted", voice_id, voice.name)
        return voice
