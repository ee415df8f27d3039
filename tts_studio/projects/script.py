"""Project scripts: markdown with chapters (`# Title`), speakers (`Name: text`), pauses (`[pause 800ms]`,
`[pause 1.5s]`) and engine tags (`[laugh]`), parsed into chapters of lines with the silence after each. A
pause inside a line stays inside it: the line is spoken in parts with the silence between them, in one take."""

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
class Part:
    """Text of a line between its pauses, with the silence after it."""

    text: str  # as written, engine tags kept
    pause_after: float = 0.0  # seconds
    marks: str = ""  # the pause marks after it, as written


@dataclass
class Line:
    id: str  # "c<chapter>-l<n>": stable while the lines before it do not change
    speaker: str
    text: str  # as written: engine tags and the pauses inside the line kept
    pause_after: float = 0.0  # seconds of silence after this line (from [pause] marks)
    parts: list[Part] = field(default_factory=list)  # the text between its inner pauses, each with its pause

    def __post_init__(self) -> None:
        if not self.parts:
            self.parts = [Part(self.text)]

    @property
    def plain(self) -> str:
        """What is said, without engine tags or pause marks (captions)."""
        return " ".join(strip_tags(part.text) for part in self.parts)


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


def _speakable(text: str) -> bool:
    return bool(strip_tags(text).strip(" .,;:!?-—"))


def _join(*texts: str) -> str:
    return " ".join(" ".join(texts).split())


def _split(text: str) -> tuple[float, list[Part]]:
    """(the silence before the first words, the parts between the pauses, each with the silence after it).
    Text without words (`[laugh]`, `.`) joins the part before it, or the one after when it comes first."""
    lead, parts, waiting, position = 0.0, [], "", 0
    for match in [*_PAUSE.finditer(text), None]:
        waiting = _join(waiting, text[position : match.start() if match else len(text)])
        if _speakable(waiting):
            parts.append(Part(waiting))
            waiting = ""
        elif waiting and parts:
            parts[-1].text = _join(parts[-1].text, waiting)
            waiting = ""
        if match is None:
            break
        if parts:
            parts[-1].pause_after += _seconds(match)
            parts[-1].marks = _join(parts[-1].marks, match.group(0))
        else:
            lead += _seconds(match)
        position = match.end()
    return lead, parts


def _written(parts: list[Part]) -> str:
    """The text of a line made of `parts` (their inner pause marks kept, the last one's left out)."""
    return " ".join([f"{part.text} {part.marks}" for part in parts[:-1]] + [parts[-1].text])


def _add_spoken(chapter: Chapter, speaker: str, text: str) -> None:
    """The lines of `speaker` in `text`: one, or several of whole sentences when it is longer than
    MAX_LINE_CHARS (a paragraph). A pause inside a line stays in it; one at its end is the silence after it."""
    lead, parts = _split(text)
    if chapter.lines:
        chapter.lines[-1].pause_after += lead
    else:
        chapter.lead_pause += lead
    if not parts:
        return
    pieces: list[Part] = []
    long = len(_written(parts)) > MAX_LINE_CHARS
    for part in parts:
        texts = [
            p for s in (split_sentences(part.text) if long else [part.text]) for p in split_long(s, MAX_LINE_CHARS)
        ]
        pieces += [Part(piece) for piece in texts[:-1]] + [Part(texts[-1], part.pause_after, part.marks)]
    groups: list[list[Part]] = []
    for piece in pieces:
        if groups and not groups[-1][-1].pause_after:
            joined = Part(f"{groups[-1][-1].text} {piece.text}", piece.pause_after, piece.marks)
            candidate = [*groups[-1][:-1], joined]
        else:
            candidate = [*groups[-1], piece] if groups else []
        if candidate and len(_written(candidate)) <= MAX_LINE_CHARS:
            groups[-1] = candidate
        else:
            groups.append([piece])
    for group in groups:
        last = group[-1]
        inner = [*group[:-1], Part(last.text)]
        chapter.lines.append(Line("", speaker, _written(inner), last.pause_after, inner))


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
