"""Take verification: Whisper hears the take, a normalised word error rate scores it against the text, and
silence or a hallucinated tail beyond the last heard word is trimmed off."""

from __future__ import annotations

import re
from dataclasses import dataclass
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
_WORD = re.compile(r"[a-z0-9']+")


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def word_error_rate(expected: str, heard: str) -> float:
    reference, hypothesis = " ".join(words_of(expected)), " ".join(words_of(heard))
    if not reference:
        return 0.0 if not hypothesis else 1.0
    return float(jiwer.wer(reference, hypothesis or "-"))


def failed(expected: str, wer: float, threshold: float = WER_THRESHOLD) -> bool:
    """Too many words wrong: above the threshold and more than one word."""
    return wer > threshold and wer * max(1, len(words_of(expected))) > 1.0


@dataclass
class Heard:
    transcript: str
    wer: float
    words: list[dict[str, Any]]


GAP_SECONDS = 0.6  # silence between takes checked in one call


def batch_seconds(lengths: list[int]) -> float:
    """Seconds of audio `hear_batch` sends for takes of these sample counts (silences included)."""
    return (sum(lengths) + len(lengths) * int(GAP_SECONDS * RATE)) / RATE


def hear(transcriber: Transcriber, samples: np.ndarray, text: str) -> Heard:
    return hear_batch(transcriber, [(samples, text)])[0]


def hear_batch(transcriber: Transcriber, takes: list[tuple[np.ndarray, str]]) -> list[Heard]:
    """Whisper over several takes at once (joined with short silences: one encoder pass for up to 30 s
    instead of one per take); each heard word goes to the take its middle falls in."""
    if not takes:
        return []
    gap = np.zeros(int(GAP_SECONDS * RATE), np.float32)
    parts, spans, position = [], [], 0
    for samples, _ in takes:
        spans.append((position / RATE, (position + len(samples)) / RATE))
        parts += [samples.astype(np.float32), gap]
        position += len(samples) + len(gap)
    transcript = transcriber.transcribe(
        DecodedAudio(np.concatenate(parts), RATE, "pcm"), "en", word_timestamps=True, priority=Priority.BACKGROUND
    )  # verification waits behind interactive transcription
    heard = []
    for (start, end), (_, text) in zip(spans, takes, strict=True):
        low, high = start - GAP_SECONDS / 2, end + GAP_SECONDS / 2
        mine = [w for w in transcript.words if low <= (w["start"] + w["end"]) / 2 < high]
        words = [{**w, "start": round(max(0.0, w["start"] - start), 3), "end": round(min(end, w["end"]) - start, 3)}
                 for w in mine]  # fmt: skip
        said = " ".join(w["word"] for w in mine).strip()
        heard.append(Heard(said, word_error_rate(text, said), words))
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


def trim(samples: np.ndarray, words: list[dict[str, Any]]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Cut leading/trailing silence and anything after the last heard word (a hallucinated tail); word
    times move with the cut."""
    start, end = _speech_bounds(samples)
    if words:
        end = min(end + int(0.05 * RATE), int((words[-1]["end"] + TAIL_SECONDS) * RATE))
    start = max(0, start - int(LEAD_SECONDS * RATE))
    end = max(start + 1, min(len(samples), end))
    shift = start / RATE
    moved = [{**w, "start": round(max(0.0, w["start"] - shift), 3), "end": round(max(0.0, w["end"] - shift), 3)}
             for w in words]  # fmt: skip
    return samples[start:end].copy(), moved
