"""Text preparation: light normalisation and sentence chunking for streaming synthesis."""

from __future__ import annotations

import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MD_FENCE = re.compile(r"```.*?```", re.S)
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_MARKS = re.compile(r"(^|\s)[#>]+\s+|[*_`~]{1,3}(?=\S)|(?<=\S)[*_`~]{1,3}", re.M)
_URL = re.compile(r"https?://\S*[^\s.,;:!?)\]'\"]")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
# A sentence ends at . ! ? … (plus closing quotes/brackets) followed by space, or at CJK full stops.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+|(?<=[。！？])")
_CLAUSE_END = re.compile(r"(?<=[,;:—–])\s+|(?<=[，；：])")
_NUMBER = re.compile(r"\d(?:[\d,]*\d)?")
LONGEST_NUMBER = 15  # digits read as one number; longer ones are read digit by digit (engines overflow)
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e fig no vol mt ft approx dept est inc ltd co".split()  # noqa: SIM905 (a word list reads best as one string)
)


def _spell_long_number(match: re.Match[str]) -> str:
    digits = match.group().replace(",", "")
    if len(digits) <= LONGEST_NUMBER:
        return match.group()
    return " ".join(digits)


def normalize(text: str) -> str:
    """Unicode-normalise and strip what should not be read aloud (markdown marks, URLs, control chars)."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub(" ", text)
    text = _MD_FENCE.sub(" ", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _URL.sub("link", text)
    text = _MD_MARKS.sub(r"\1", text)
    text = _NUMBER.sub(_spell_long_number, text)
    text = _SPACES.sub(" ", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return "\n".join(line.strip() for line in text.split("\n")).strip()


def split_sentences(text: str) -> list[str]:
    """Sentences in order; paragraph breaks always end one; "Dr." and initials do not."""
    sentences: list[str] = []
    for paragraph in re.split(r"\n+", text):
        pending = ""
        for piece in _SENTENCE_END.split(paragraph):
            if not piece.strip():
                continue
            pending = f"{pending} {piece.strip()}" if pending else piece.strip()
            last_word = pending.rsplit(" ", 1)[-1].rstrip(".").lower()
            if pending.endswith(".") and (last_word in _ABBREVIATIONS or len(last_word) == 1):
                continue  # "Dr. Smith", "J. K. Rowling": keep going
            sentences.append(pending)
            pending = ""
        if pending:
            sentences.append(pending)
    return sentences


def split_long(sentence: str, max_chars: int) -> list[str]:
    """Break an over-long sentence at clause punctuation, then at spaces."""
    if len(sentence) <= max_chars:
        return [sentence]
    parts: list[str] = []
    for clause in _CLAUSE_END.split(sentence):
        while len(clause) > max_chars:
            cut = clause.rfind(" ", 0, max_chars)
            opened = clause.rfind("[", 0, cut)
            if opened > 0 and clause.rfind("]", 0, cut) < opened:  # never inside an [engine tag]
                cut = opened
            cut = cut if cut > 0 else max_chars
            parts.append(clause[:cut].strip())
            clause = clause[cut:].strip()
        if clause:
            parts.append(clause)
    return _pack(parts, max_chars)


def _pack(pieces: list[str], max_chars: int) -> list[str]:
    packed: list[str] = []
    for piece in pieces:
        if packed and len(packed[-1]) + 1 + len(piece) <= max_chars:
            packed[-1] = f"{packed[-1]} {piece}"
        else:
            packed.append(piece)
    return packed


def chunk_text(text: str, max_chars: int = 300, first_chars: int = 120) -> list[str]:
    """Chunks for the engine: the first one short (fast first audio), the rest packed up to `max_chars`.

    Sentences are never merged across a paragraph break into the first chunk, and never split unless
    one alone is longer than `max_chars`.
    """
    pieces: list[str] = []
    for sentence in split_sentences(normalize(text)):
        pieces.extend(split_long(sentence, max_chars))
    if not pieces:
        return []
    first = split_long(pieces[0], min(first_chars, max_chars))  # a long first sentence is cut short
    return first[:1] + _pack(first[1:] + pieces[1:], max_chars)
