"""Take verification: Whisper hears the take, a normalised word error rate scores it against the text, and
silence or a hallucinated tail beyond the last heard word is trimmed off. A line with pauses inside is
synthesised part by part (`LineAudio`): its take lays the parts out with the pauses between them, and Whisper
hears them with each pause shortened to the gap it leaves between takes (a 30 s pause stays one window)."""

from __future__ import annotations

import bisect
import itertools
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import jiwer
import numpy as np

from tts_studio.audio.decode import DecodedAudio
from tts_studio.engines.scheduler import Priority
from tts_studio.services.transcription import Transcriber

RATE = 24_000
# Whisper tiny.en hears clean embedded-engine speech at 0-5 % WER over paragraphs, but a short line swings:
# one misheard word in five is 20 %. A take fails above 25 % and when more than one word is wrong.
WER_THRESHOLD = 0.25
LEAD_SECONDS, TAIL_SECONDS = 0.08, 0.25  # kept before the first and after the last heard word
PART_LEAD, PART_TAIL = 0.03, 0.06  # kept before and after a part's speech where it meets a pause inside a line
_WORD = re.compile(r"[a-z0-9']+")
UNSPACED = ("zh", "ja", "th", "lo", "my", "bo", "km", "yue")  # scripts without spaces: scored per character


def words_of(text: str, language: str = "en") -> list[str]:
    """The words Whisper's transcript is scored on: English as ever (a-z, digits, apostrophes); other
    languages keep their letters (é, ß, ж...), and scripts written without spaces count characters."""
    primary = language.lower().replace("_", "-").split("-")[0]
    if primary == "en":
        return _WORD.findall(text.lower().replace("\u2019", "'"))
    folded = unicodedata.normalize("NFKC", text).casefold().replace("\u2019", "'")
    kept = "".join(ch if ch == "'" or unicodedata.category(ch)[0] in "LMN" else " " for ch in folded)
    found = [word.strip("'") for word in kept.split() if word.strip("'")]
    if primary in UNSPACED:  # letters and digits (their marks go with them)
        return [ch for word in found for ch in word if unicodedata.category(ch)[0] in "LN"]
    return found


def word_error_rate(expected: str, heard: str, language: str = "en") -> float:
    reference, hypothesis = " ".join(words_of(expected, language)), " ".join(words_of(heard, language))
    if not reference:
        return 0.0 if not hypothesis else 1.0
    return float(jiwer.wer(reference, hypothesis or "-"))


def failed(expected: str, wer: float, threshold: float = WER_THRESHOLD, language: str = "en") -> bool:
    """Too many words wrong: above the threshold and more than one word."""
    return wer > threshold and wer * max(1, len(words_of(expected, language))) > 1.0


@dataclass
class Heard:
    transcript: str
    wer: float
    words: list[dict[str, Any]]


GAP_SECONDS = 0.6  # silence between takes checked in one call


def batch_seconds(lengths: list[int]) -> float:
    """Seconds of audio `hear_batch` sends for takes of these sample counts (silences included)."""
    return (sum(lengths) + len(lengths) * int(GAP_SECONDS * RATE)) / RATE


def hear(transcriber: Transcriber, samples: np.ndarray, text: str, language: str = "en") -> Heard:
    return hear_batch(transcriber, [(samples, text)], language)[0]


def hear_batch(transcriber: Transcriber, takes: list[tuple[np.ndarray, str]], language: str = "en") -> list[Heard]:
    """Whisper over several takes in one language at once (joined with short silences: one encoder pass for
    up to 30 s instead of one per take); each heard word goes to the take its middle falls in. English goes to
    tiny.en, other languages to the multilingual model (`transcriber.can_transcribe` says whether it is here)."""
    if not takes:
        return []
    gap = np.zeros(int(GAP_SECONDS * RATE), np.float32)
    parts, spans, position = [], [], 0
    for samples, _ in takes:
        spans.append((position / RATE, (position + len(samples)) / RATE))
        parts += [samples.astype(np.float32), gap]
        position += len(samples) + len(gap)
    transcript = transcriber.transcribe(
        DecodedAudio(np.concatenate(parts), RATE, "pcm"), language, word_timestamps=True, priority=Priority.BACKGROUND
    )  # verification waits behind interactive transcription
    heard = []
    for (start, end), (_, text) in zip(spans, takes, strict=True):
        low, high = start - GAP_SECONDS / 2, end + GAP_SECONDS / 2
        mine = [w for w in transcript.words if low <= (w["start"] + w["end"]) / 2 < high]
        words = [
            {**w, "start": round(max(0.0, w["start"] - start), 3), "end": round(min(end, w["end"]) - start, 3)}
            for w in mine
        ]
        said = " ".join(w["word"] for w in mine).strip()
        heard.append(Heard(said, word_error_rate(text, said, language), words))
    return heard


def _speech_bounds(samples: np.ndarray) -> tuple[int, int]:
    """First and last sample above a quiet floor (-45 dBFS, in 10 ms windows)."""
    window = RATE // 100
    frames = len(samples) // window
    if frames == 0:
        return 0, len(samples)
    energy = np.sqrt(np.mean(samples[: frames * window].reshape(frames, window) ** 2, axis=1))
    loud = np.flatnonzero(energy > 10 ** (-45 / 20))
    if loud.size == 0:
        return 0, len(samples)
    return int(loud[0] * window), int(min(len(samples), (loud[-1] + 1) * window))


def _cut(samples: np.ndarray, words: list[dict[str, Any]]) -> tuple[int, int]:
    """Where `trim` cuts: (first sample kept, first sample after)."""
    start, end = _speech_bounds(samples)
    if words:
        end = min(end + int(0.05 * RATE), int((words[-1]["end"] + TAIL_SECONDS) * RATE))
    start = max(0, start - int(LEAD_SECONDS * RATE))
    return start, max(start + 1, min(len(samples), end))


def _shifted(words: list[dict[str, Any]], shift: float) -> list[dict[str, Any]]:
    return [
        {**w, "start": round(max(0.0, w["start"] + shift), 3), "end": round(max(0.0, w["end"] + shift), 3)}
        for w in words
    ]


def trim(samples: np.ndarray, words: list[dict[str, Any]]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Cut leading/trailing silence and anything after the last heard word (a hallucinated tail); word
    times move with the cut."""
    start, end = _cut(samples, words)
    return samples[start:end].copy(), _shifted(words, -start / RATE)


def lay_out(pieces: list[np.ndarray], pauses: list[float]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The pieces one after another, `pauses[i]` seconds of silence after piece i; (the audio, each piece's
    (start, end) sample in it)."""
    parts, spans, position = [], [], 0
    for piece, pause in zip(pieces, pauses, strict=True):
        silence = np.zeros(round(pause * RATE), np.float32)
        spans.append((position, position + len(piece)))
        parts += [piece.astype(np.float32), silence]
        position += len(piece) + len(silence)
    return np.concatenate(parts), spans


@dataclass
class LineAudio:
    """A line's audio as synthesised, one piece per part (the text between its pauses), and the same audio as
    Whisper hears it: each pause at most GAP_SECONDS."""

    pieces: list[np.ndarray]
    pauses: list[float]  # the silence after each piece (the last: none)
    heard: np.ndarray = field(init=False)
    _heard_spans: list[tuple[int, int]] = field(init=False)

    def __post_init__(self) -> None:
        if len(self.pieces) > 1:  # where a part meets a pause, the pause is the silence: cut the part's own
            self.pieces = [_speech_only(piece) for piece in self.pieces]
        self.heard, self._heard_spans = lay_out(self.pieces, [min(p, GAP_SECONDS) for p in self.pauses])

    def take(self, heard: list[dict[str, Any]]) -> tuple[np.ndarray, list[dict[str, Any]], list[tuple[float, float]]]:
        """(the take: the pieces with their whole pauses, trimmed as `trim` does; the words Whisper heard, moved
        onto it; each part's (start, end) in it, seconds). A tail is cut only in the last part: a part Whisper
        did not hear stays in the take (the line's error rate already says so)."""
        samples, spans = lay_out(self.pieces, self.pauses)
        borders = [(end + start) / 2 / RATE for (_, end), (start, _) in itertools.pairwise(self._heard_spans)]
        words: list[dict[str, Any]] = []
        last_part = []
        for word in heard:  # each word moves with the part its middle falls in
            index = bisect.bisect_right(borders, (word["start"] + word["end"]) / 2)
            moved = _shifted([word], (spans[index][0] - self._heard_spans[index][0]) / RATE)
            words += moved
            last_part += moved if index == len(spans) - 1 else []
        start, end = _cut(samples, last_part)
        parts = [(max(0, a - start) / RATE, max(0, min(b, end) - start) / RATE) for a, b in spans]
        return samples[start:end].copy(), _shifted(words, -start / RATE), parts


def _speech_only(samples: np.ndarray) -> np.ndarray:
    """The piece from just before its first sound to just after its last."""
    start, end = _speech_bounds(samples)
    return samples[max(0, start - int(PART_LEAD * RATE)) : min(len(samples), end + int(PART_TAIL * RATE))]
