"""Pronunciation dictionaries: `term -> say`, whole words, optionally case-sensitive, global, per project and
per voice. Applied to the text before synthesis (projects always; /v1/audio/speech when asked)."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tts_studio.services.file_watch import WatchedJson
from tts_studio.services.library import atomic_write_json

MAX_ENTRIES = 2000


class Entry(BaseModel):
    """One pronunciation: `term` is replaced by `say` (whole words)."""

    model_config = ConfigDict(extra="forbid")
    term: str = Field(min_length=1, max_length=200)
    say: str = Field(max_length=400)
    match_case: bool = False
    voice: str | None = Field(None, description="Only when this voice speaks (a voice id or name).")


def apply(text: str, entries: list[Entry], voice: str | None = None) -> str:
    """`text` with every entry that applies to `voice` replaced; longer terms first, one pass."""
    usable = [e for e in entries if e.voice is None or (voice is not None and e.voice.lower() == voice.lower())]
    if not usable:
        return text
    usable.sort(key=lambda e: len(e.term), reverse=True)
    sensitive = {e.term: e.say for e in usable if e.match_case}
    folded = {e.term.lower(): e.say for e in usable if not e.match_case}
    alternatives = "|".join(re.escape(e.term) for e in usable)
    pattern = re.compile(rf"(?<![\w])(?:{alternatives})(?![\w])", re.I)

    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        if found in sensitive:
            return sensitive[found]
        return folded.get(found.lower(), found)

    return pattern.sub(replace, text)


def _parse(raw: Any) -> list[Entry]:
    return [Entry.model_validate(item) for item in raw if isinstance(item, dict)]


class GlobalDictionary:
    """The studio-wide dictionary in the user data dir (atomic writes), parsed again only when the file
    changed (another process sharing the data dir may write it). A file that does not parse reads as empty
    at first, later as the last version that did."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: WatchedJson[list[Entry]] = WatchedJson(path, _parse, list, strict=False)

    def entries(self) -> list[Entry]:
        return [e.model_copy() for e in self._file.current()]  # copies: the cached entries stay as read

    def replace(self, entries: list[Entry]) -> None:
        with self._lock:
            kept = [e.model_copy() for e in entries]
            self._file.written(kept, atomic_write_json(self.path, [e.model_dump() for e in kept]))
