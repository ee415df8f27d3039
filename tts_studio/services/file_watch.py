"""Caches of JSON files that other processes may rewrite (several replicas share one data dir).

Every read `os.stat`s the file and parses it again only when its stamp (inode, mtime, size) moved: writers
replace files atomically (tmp + rename), so each rewrite brings a new inode, and mtime and size catch an
edit in place. A file that fails to parse keeps the last good copy (one warning); a missing file is empty.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class FileStamp:
    """What tells one version of a file from the next without reading it."""

    inode: int
    mtime_ns: int
    size: int

    @classmethod
    def of(cls, stat: os.stat_result) -> FileStamp:
        return cls(stat.st_ino, stat.st_mtime_ns, stat.st_size)


def file_stamp(path: Path) -> FileStamp | None:
    """The file's stamp now; None when there is no file."""
    try:
        return FileStamp.of(path.stat())
    except (FileNotFoundError, NotADirectoryError):
        return None


class WatchedJson(Generic[T]):
    """The value `parse` makes of a JSON file, parsed again whenever the file changed on disk.

    The first load happens here: with `strict` a file that does not parse raises (better than starting empty
    and overwriting it on the next write); otherwise it counts as empty, with a warning. The returned value is
    shared: callers must not change it, but build a new one and hand it to `written` after writing the file.
    """

    def __init__(self, path: Path, parse: Callable[[Any], T], empty: Callable[[], T], strict: bool = True) -> None:
        self.path = path
        self._parse = parse
        self._empty = empty
        self._lock = threading.Lock()
        self._value = empty()
        self._stamp: FileStamp | None = None
        self._failing = False
        stamp = None
        try:
            stamp = file_stamp(path)
            if stamp is not None:
                self._load(stamp)
        except Exception as exc:
            if strict:
                raise
            self._warn(exc)
            self._stamp = stamp

    @property
    def stamp(self) -> FileStamp | None:
        """The version of the file the value stands for (None: no file)."""
        return self._stamp

    def _load(self, stamp: FileStamp) -> None:
        value = self._parse(json.loads(self.path.read_bytes()))
        self._value, self._stamp, self._failing = value, stamp, False

    def _warn(self, exc: BaseException) -> None:
        if not self._failing:  # once until the file reads again
            log.warning("%s could not be read (%s); keeping the last version that could", self.path, exc)
        self._failing = True

    def current(self) -> T:
        """The value for the file as it is now: one stat, a parse only when the file changed."""
        with self._lock:
            try:
                stamp = file_stamp(self.path)
            except OSError as exc:  # unreadable folder: keep what we have
                self._warn(exc)
                return self._value
            if stamp == self._stamp:
                return self._value
            if stamp is None:
                self._value, self._stamp, self._failing = self._empty(), None, False
                return self._value
            try:
                self._load(stamp)
            except FileNotFoundError:  # removed between the stat and the read
                self._value, self._stamp, self._failing = self._empty(), None, False
            except Exception as exc:
                self._warn(exc)
                self._stamp = stamp  # not parsed again until it changes
            return self._value

    def written(self, value: T, stamp: FileStamp | None = None) -> None:
        """We wrote `value` to the file ourselves: keep it without reading it back. `stamp`: the written
        file's, taken before it was renamed into place (else the file is stat'ed now)."""
        with self._lock:
            self._value, self._stamp, self._failing = value, stamp or file_stamp(self.path), False
