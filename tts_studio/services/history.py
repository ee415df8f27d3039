"""Recent generations from the UI, kept in the user data dir (files plus an atomically replaced index)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from tts_studio.audio.encode import FORMATS
from tts_studio.errors import NotFound
from tts_studio.services.library import atomic_write_json


@dataclass(frozen=True)
class HistoryEntry:
    id: str
    created_at: int
    text: str
    voice: str
    model: str
    format: str
    seconds: float
    file: str

    @property
    def label(self) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(self.created_at))
        snippet = self.text if len(self.text) <= 40 else self.text[:39] + "…"
        return f"{when} · {self.voice} · {self.seconds:.1f} s · {snippet}"


class History:
    """At most `keep` entries, newest first; the oldest are removed with their files."""

    def __init__(self, root: Path, keep: int = 50) -> None:
        self.root = root
        self.keep = keep
        self.root.mkdir(parents=True, exist_ok=True)
        self._index = root / "index.json"
        self._lock = threading.Lock()
        data = json.loads(self._index.read_text(encoding="utf-8")) if self._index.exists() else {"entries": []}
        self._entries = [HistoryEntry(**e) for e in data["entries"] if (root / e["file"]).exists()]

    def entries(self) -> list[HistoryEntry]:
        with self._lock:
            return list(self._entries)

    def path(self, entry_id: str) -> Path:
        for entry in self.entries():
            if entry.id == entry_id:
                return self.root / entry.file
        raise NotFound(f"No generation '{entry_id}' in the history.", code="history_not_found")

    def add(self, audio: bytes, fmt: str, text: str, voice: str, model: str, seconds: float) -> HistoryEntry:
        entry_id = uuid.uuid4().hex[:12]
        ext = FORMATS[fmt].extension
        entry = HistoryEntry(
            entry_id, int(time.time()), text[:500], voice, model, fmt, round(seconds, 2), f"{entry_id}.{ext}"
        )
        tmp = self.root / f".{entry.file}.tmp"
        tmp.write_bytes(audio)
        tmp.replace(self.root / entry.file)
        with self._lock:
            kept, dropped = [entry, *self._entries][: self.keep], self._entries[self.keep - 1 :]
            atomic_write_json(self._index, {"entries": [asdict(e) for e in kept]})
            self._entries = kept
        for old in dropped:
            (self.root / old.file).unlink(missing_ok=True)
        return entry

    def delete(self, entry_id: str) -> None:
        path = self.path(entry_id)
        with self._lock:
            self._entries = [e for e in self._entries if e.id != entry_id]
            atomic_write_json(self._index, {"entries": [asdict(e) for e in self._entries]})
        path.unlink(missing_ok=True)
