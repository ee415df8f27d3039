"""Project scripts: markdown with chapters (`# Title`), speakers (`Name: text`), pauses (`[pause 800ms]`,
`[pause 1.5s]`) and engine tags (`[laugh]`), parsed into chapters of lines with the silence after each."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tts_studio.text import split_long, split_sentences

NARRATOR = "Narrator"
MAX_PAUSE_SECONDS = 30.0
MAX_SCRIPT_CHARS = 2_000_000  # a long novel is about 1 M
MAX_LINE_CHARS = 1000  # a longer paragraph becomes several lines (takes stay short enough to check)
_PAUSE = re.compile(r"\[pause\s+(\d+(?:\.\d+)?)\s*(ms|s)\]", re.I)
_TAG = re.compile(r"\[([a-z][a-z _-]{0,30})\]", re.I)
_SPEAKER = re.compile(r"^([A-Z][\w .'-]{0,39}?):\s+(.+)$")
_CHAPTER = re.compile(r"^#\s+(.+?)\s*#*$")
_LIST_MARK = re.compile(r"^(?:[-*+]|\d+[.)])\s+")


class ScriptError(ValueError):
    """A script that cannot be rendered (the message says where)."""


@dataclass
class Line:
    id: str  # "c<chapter>-l<n>": stable while the lines before it do not change
    speaker: str
    text: str  # as written, engine tags kept
    pause_after: float = 0.0  # seconds of silence after this line (from [pause] marks)


@dataclass
class Chapter:
    title: str
    lines: list[Line] = field(default_factory=list)
    lead_pause: float = 0.0  # silence before the first line


def _seconds(match: re.Match[str]) -> float:
    value = float(match.group(1)) / (1000.0 if match.group(2).lower() == "ms" else 1.0)
    if value > MAX_PAUSE_SECONDS:
        raise ScriptError(f"'{match.group(0)}' is longer than {MAX_PAUSE_SECONDS:.0f} s.")
    return value


def parse(script: str) -> list[Chapter]:
    """Chapters in order; text before the first `# Title` forms an untitled first chapter."""
    chapters: list[Chapter] = []
    current = Chapter("")
    for raw in script.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not line:
            continue
        heading = _CHAPTER.match(line)
        if heading:
            if current.lines or current.title or current.lead_pause:
                chapters.append(current)
            current = Chapter(heading.group(1).strip())
            continue
        if line.startswith("#"):  # a lower heading is read as text
            line = line.lstrip("#").strip()
        line = _LIST_MARK.sub("", line)
        speaker, text = NARRATOR, line
        said = _SPEAKER.match(line)
        if said and not said.group(1).lower().startswith(("http", "note")):
            speaker, text = said.group(1).strip(), said.group(2)
        _add_spoken(current, speaker, text)
    if current.lines or current.title:
        chapters.append(current)
    chapters = [c for c in chapters if c.lines]
    if not chapters:
        raise ScriptError("The script has nothing to speak.")
    for number, chapter in enumerate(chapters, 1):
        for index, item in enumerate(chapter.lines, 1):
            item.id = f"c{number}-l{index}"
    return chapters


def _add_spoken(chapter: Chapter, speaker: str, text: str) -> None:
    """Split `text` at its pauses into lines of `speaker`, each with the silence that follows it."""
    position = 0
    for match in _PAUSE.finditer(text):
        _add_text(chapter, speaker, text[position : match.start()])
        pause = _seconds(match)
        if chapter.lines:
            chapter.lines[-1].pause_after += pause
        else:
            chapter.lead_pause += pause
        position = match.end()
    _add_text(chapter, speaker, text[position:])


def _add_text(chapter: Chapter, speaker: str, text: str) -> None:
    """One line, or several of whole sentences when it is longer than MAX_LINE_CHARS (a paragraph)."""
    text = " ".join(text.split())
    if not strip_tags(text).strip(" .,;:!?-—"):
        return
    pieces: list[str] = []
    for sentence in split_sentences(text) if len(text) > MAX_LINE_CHARS else [text]:
        for part in split_long(sentence, MAX_LINE_CHARS):
            if pieces and len(pieces[-1]) + 1 + len(part) <= MAX_LINE_CHARS:
                pieces[-1] = f"{pieces[-1]} {part}"
            else:
                pieces.append(part)
    chapter.lines.extend(Line("", speaker, piece) for piece in pieces)


def tags_in(text: str) -> list[str]:
    """Engine tags (`[laugh]`) in `text`, lower-case."""
    return [m.group(1).lower() for m in _TAG.finditer(text)]


def strip_tags(text: str, keep: tuple[str, ...] = ()) -> str:
    """`text` without the engine tags it has, except those in `keep`."""
    kept = {tag.lower() for tag in keep}
    cleaned = _TAG.sub(lambda m: m.group(0) if m.group(1).lower() in kept else " ", text)
    return " ".join(cleaned.split())


def speakers(chapters: list[Chapter]) -> list[str]:
    """Every speaker, in order of appearance."""
    seen: dict[str, None] = {}
    for chapter in chapters:
        for line in chapter.lines:
            seen.setdefault(line.speaker, None)
    return list(seen)
