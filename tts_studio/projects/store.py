"""Projects on disk: `projects/<id>/project.json` (a `ProjectData`: the script, cast, dictionary, status) and
one file pair per take, `takes/<key>.wav` + `takes/<key>.json`, each written atomically. A take's key hashes
everything that shapes its audio, so an edited line gets a new take and an unchanged one keeps its own."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import threading
import time
import uuid
import wave
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from tts_studio.errors import NotFound
from tts_studio.projects.dictionary import Entry, apply
from tts_studio.projects.script import NARRATOR, Chapter, Line, Part, parse, strip_tags
from tts_studio.services.library import atomic_write_bytes, atomic_write_json

RATE = 24_000
PARSED_PROJECTS = 64  # parsed projects kept in memory (a script may be 2 M characters)
Status = Literal["draft", "queued", "rendering", "done", "failed", "cancelled"]


class RenderStats(BaseModel):
    """How the last render went (the renderer's clocks and counts)."""

    wall_seconds: float = 0.0
    synthesis_seconds: float = 0.0
    verification_seconds: float = 0.0
    verification_calls: int = 0
    lines_rendered: int = 0


class ProjectData(BaseModel):
    """What project.json holds, in the JSON shape it has always had (keys it does not know are dropped)."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)
    id: str
    object: Literal["project"] = "project"
    created_at: int
    updated_at: int
    status: Status = "draft"
    error: str | None = None
    name: str
    script: str
    voices: dict[str, str] = {}
    model: str = "tts-1"
    dictionary: list[Entry] = []
    last_render: RenderStats | None = None


@dataclass
class Take:
    """A rendered line: trimmed audio and how well Whisper heard it."""

    key: str
    samples: np.ndarray  # float32 mono, 24 kHz
    transcript: str
    wer: float | None  # None: not verified (a language Whisper tiny.en cannot check)
    tries: int
    flagged: bool
    words: list[dict[str, Any]]  # Whisper's word timings, seconds from the take's start
    note: str = ""
    approved: bool = False
    parts: list[tuple[float, float]] = field(default_factory=list)  # each spoken part's (start, end), seconds

    @property
    def seconds(self) -> float:
        return len(self.samples) / RATE

    def meta(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "transcript": self.transcript,
            "wer": self.wer,
            "tries": self.tries,
            "flagged": self.flagged,
            "words": self.words,
            "note": self.note,
            "approved": self.approved,
            "seconds": round(self.seconds, 3),
            "parts": [[round(start, 3), round(end, 3)] for start, end in self.parts],
        }


def wav_bytes(samples: np.ndarray) -> bytes:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    out = io.BytesIO()
    with wave.open(out, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes(pcm)
    return out.getvalue()


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as handle:
        data = handle.readframes(handle.getnframes())
    return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0


class Project:
    """One project's settings and files; `spoken(line)` is what the engine is asked to say."""

    def __init__(self, folder: Path, data: ProjectData) -> None:
        self.folder = folder
        self.data = data
        self.chapters: list[Chapter] = parse(data.script)

    @property
    def id(self) -> str:
        return self.data.id

    @property
    def dictionary(self) -> list[Entry]:
        return self.data.dictionary

    def voice_for(self, speaker: str) -> str:
        voices = self.data.voices
        return voices.get(speaker) or voices.get(NARRATOR) or "alloy"

    def lines(self) -> list[Line]:
        return [line for chapter in self.chapters for line in chapter.lines]

    def line(self, line_id: str) -> Line:
        for line in self.lines():
            if line.id == line_id:
                return line
        raise NotFound(f"The project has no line '{line_id}'.", param="lines")

    def take_key(self, line: Line, spoken: list[Part]) -> str:
        """A hash of what shapes the take: model, voice, the words of each part and the pauses between them
        (a line without a pause inside hashes as its text alone, as it always has)."""
        said = " ".join(
            f"{p.text} [pause {round(p.pause_after * 1000)}ms]" if p.pause_after else p.text for p in spoken
        )
        shape = [self.data.model, self.voice_for(line.speaker), said]
        return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:24]

    def spoken(self, line: Line, global_entries: list[Entry], keep_tags: tuple[str, ...]) -> list[Part]:
        """What the engine is asked to say, part by part (the line's text between its pauses): the
        dictionaries applied (global, then project; voice entries for its voice) and the engine tags the
        engine cannot speak removed."""
        voice = self.voice_for(line.speaker)
        spoken: list[Part] = []
        for part in line.parts:
            text = strip_tags(apply(apply(part.text, global_entries, voice), self.dictionary, voice), keep_tags)
            if spoken and not text:  # a part the dictionary says nothing for: its pause joins the one before
                spoken[-1].pause_after += part.pause_after
            elif spoken and not spoken[-1].text:
                spoken[-1] = Part(text, part.pause_after)
            else:
                spoken.append(Part(text, part.pause_after))
        return spoken

    def take_path(self, key: str) -> Path:
        return self.folder / "takes" / f"{key}.wav"

    def meta_path(self, key: str) -> Path:
        """The take's metadata; its presence marks the take as finished (it is written last)."""
        return self.folder / "takes" / f"{key}.json"

    def take_meta(self, key: str) -> dict[str, Any] | None:
        """The finished take's metadata (transcript, WER, tries, flags) without its audio, or None."""
        try:
            meta: dict[str, Any] = json.loads(self.meta_path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return meta

    def load_take(self, key: str) -> Take | None:
        try:
            meta = json.loads(self.meta_path(key).read_text(encoding="utf-8"))
            samples = _read_wav(self.take_path(key))
        except (OSError, ValueError, EOFError, wave.Error):
            return None
        parts = [(float(start), float(end)) for start, end in meta.get("parts", [])]  # none in older takes
        return Take(
            key,
            samples,
            meta["transcript"],
            meta["wer"],
            meta["tries"],
            meta["flagged"],
            meta["words"],
            meta.get("note", ""),
            meta.get("approved", False),
            parts,
        )

    def drop_take(self, key: str) -> None:
        self.meta_path(key).unlink(missing_ok=True)
        self.take_path(key).unlink(missing_ok=True)


def _stamp(path: Path) -> tuple[int, int, int]:
    """What tells one version of a file from the next (each atomic write is a new inode)."""
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _write(folder: Path, data: ProjectData) -> None:
    atomic_write_json(folder / "project.json", data.model_dump(mode="json"))


class ProjectStore:
    """Every project under `root`; project.json rewrites are atomic and serialised."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.RLock()
        # parsed projects by id, with the project.json they were read from (inode, mtime, size): a progress
        # event or a listing re-reads and re-parses a script only when its file changed
        self._parsed: OrderedDict[str, tuple[tuple[int, int, int], Project]] = OrderedDict()
        self._parsed_lock = threading.Lock()

    def _folder(self, project_id: str) -> Path:
        if not project_id.startswith("proj_") or not project_id[5:].isalnum():
            raise NotFound(f"No project '{project_id}'.", param="id")
        return self.root / project_id

    def create(self, name: str, script: str, voices: dict[str, str], model: str, dictionary: list[Entry]) -> Project:
        project_id = f"proj_{uuid.uuid4().hex[:16]}"
        now = int(time.time())
        data = ProjectData(
            id=project_id,
            created_at=now,
            updated_at=now,
            name=name,
            script=script,
            voices=voices,
            model=model,
            dictionary=dictionary,
        )
        folder = self.root / project_id
        project = Project(folder, data)  # parses: a bad script writes nothing
        with self._lock:
            _write(folder, data)
        return project

    def get(self, project_id: str) -> Project:
        """The project as its project.json says now (parsed once per version of the file; callers share it
        and must not change it)."""
        folder = self._folder(project_id)
        path = folder / "project.json"
        try:
            stamp = _stamp(path)
        except OSError:
            raise NotFound(f"No project '{project_id}'.", param="id") from None
        with self._parsed_lock:
            cached = self._parsed.get(project_id)
            if cached is not None and cached[0] == stamp:
                self._parsed.move_to_end(project_id)
                return cached[1]
        try:
            data = ProjectData.model_validate_json(path.read_bytes())
        except (OSError, ValidationError):  # gone meanwhile, or not a project.json
            raise NotFound(f"No project '{project_id}'.", param="id") from None
        project = Project(folder, data)
        self._remember(stamp, project)  # (read after the stat: at worst newer than the stamp, re-read next time)
        return project

    def _remember(self, stamp: tuple[int, int, int], project: Project) -> None:
        with self._parsed_lock:
            self._parsed[project.id] = (stamp, project)
            self._parsed.move_to_end(project.id)
            while len(self._parsed) > PARSED_PROJECTS:
                self._parsed.popitem(last=False)

    def all(self) -> list[Project]:
        found = []
        for path in sorted(self.root.glob("proj_*/project.json")):
            try:
                found.append(self.get(path.parent.name))
            except (NotFound, ValueError):
                continue
        return sorted(found, key=lambda p: p.data.created_at, reverse=True)

    def update(self, project_id: str, **changes: Any) -> Project:
        """The project with `changes` (ProjectData fields) made, validated, and written at once."""
        with self._lock:
            project = self.get(project_id)
            data = project.data.model_copy()  # (the cached one stays as it is: others may hold it)
            for name, value in {**changes, "updated_at": int(time.time())}.items():
                setattr(data, name, value)  # validated on assignment
            updated = Project(project.folder, data)  # a bad script raises before anything is written
            _write(project.folder, data)
            self._remember(_stamp(project.folder / "project.json"), updated)
            return updated

    def save_take(self, project: Project, take: Take) -> None:
        """Audio first, then its metadata: a take counts only once both are on disk. Serialised with
        `delete`: a take finishing after its project was deleted raises NotFound instead of writing (the
        writes would bring the deleted folder back)."""
        audio = wav_bytes(take.samples)
        with self._lock:
            if not (project.folder / "project.json").exists():
                raise NotFound(f"No project '{project.id}'.", param="id")
            atomic_write_bytes(project.take_path(take.key), audio)
            atomic_write_json(project.meta_path(take.key), take.meta())

    def delete(self, project_id: str) -> None:
        with self._lock:
            folder = self._folder(project_id)
            if not (folder / "project.json").exists():
                raise NotFound(f"No project '{project_id}'.", param="id")
            trash = self.root / f".deleted-{project_id}-{uuid.uuid4().hex[:6]}"
            folder.rename(trash)  # gone at once; the files follow
            with self._parsed_lock:
                self._parsed.pop(project_id, None)
            shutil.rmtree(trash, ignore_errors=True)
