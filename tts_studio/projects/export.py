"""Exports of a rendered project: the takes laid on one timeline (pauses as silence, gaps between lines and
chapters), loudness-normalised to a preset (EBU R128 with FFmpeg's filters in PyAV), encoded as m4b with
chapter markers and titles, mp3/wav/flac/opus, or as SRT/VTT captions and a JSON timing sidecar whose cue
and word times come from the real audio (a line with pauses inside is one cue in the sidecar, with its parts'
times, and one caption per part, so no caption stays up through a pause)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import av
import numpy as np

from tts_studio.audio.encode import encode_stream
from tts_studio.engines.base import AudioChunk
from tts_studio.errors import Conflict, InvalidRequest
from tts_studio.projects.script import Line, strip_tags
from tts_studio.projects.store import RATE, Project, Take

if TYPE_CHECKING:
    from av.container.core import Chapter  # only in PyAV's stubs

LINE_GAP, CHAPTER_GAP = 0.35, 1.5  # seconds of silence between lines, and after a chapter
PRESETS = {"audiobook": (-20.0, -3.0), "podcast": (-16.0, -1.5)}  # integrated LUFS, true peak dBTP
AUDIO_FORMATS = ("m4b", "mp3", "wav", "flac", "opus")
TEXT_FORMATS = ("srt", "vtt", "json")
MEDIA_TYPES = {
    "m4b": "audio/mp4",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "flac": "audio/flac",
    "opus": "audio/ogg",
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
    "json": "application/json",
}


@dataclass
class Cue:
    line_id: str
    speaker: str
    text: str
    start: float
    end: float
    words: list[dict[str, Any]]
    parts: list[tuple[str, float, float]] = field(default_factory=list)  # (text, start, end) of a line with
    # pauses inside; empty for a line without


def _cue(line: Line, take: Take, begin: float) -> Cue:
    """The line's cue, its take starting at `begin` seconds."""
    words = [{**w, "start": round(w["start"] + begin, 3), "end": round(w["end"] + begin, 3)} for w in take.words]
    parts = []
    if len(line.parts) > 1 and len(take.parts) == len(line.parts):  # (an older take may not know its parts)
        for part, (start, end) in zip(line.parts, take.parts, strict=True):
            parts.append((strip_tags(part.text), round(begin + start, 3), round(begin + end, 3)))
    return Cue(line.id, line.speaker, line.plain, round(begin, 3), round(begin + take.seconds, 3), words, parts)


@dataclass
class Timeline:
    samples: np.ndarray
    chapters: list[tuple[str, float, float]] = field(default_factory=list)  # (title, start, end)
    cues: list[Cue] = field(default_factory=list)


def assemble(project: Project, keys: dict[str, str], chapter: int | None = None) -> Timeline:
    """The project's audio in order; `keys` maps line id -> take key. 409 if a line has no take."""
    selected = list(enumerate(project.chapters, 1))
    if chapter is not None:
        if not 1 <= chapter <= len(project.chapters):
            raise InvalidRequest(f"'chapter' must be 1-{len(project.chapters)}.", param="chapter")
        selected = [selected[chapter - 1]]
    parts: list[np.ndarray] = []
    position = 0
    timeline = Timeline(np.zeros(0, np.float32))

    def add(samples: np.ndarray) -> None:
        nonlocal position
        parts.append(samples)
        position += len(samples)

    for number, chap in selected:
        start = position / RATE
        add(np.zeros(int(chap.lead_pause * RATE), np.float32))
        for index, line in enumerate(chap.lines):
            take = project.load_take(keys[line.id]) if line.id in keys else None
            if take is None:
                raise Conflict(f"Line {line.id} has no take yet: render the project first.", code="not_rendered")
            timeline.cues.append(_cue(line, take, position / RATE))
            add(take.samples)
            last = index == len(chap.lines) - 1
            gap = line.pause_after if line.pause_after else (0.0 if last else LINE_GAP)
            add(np.zeros(int(gap * RATE), np.float32))
        add(np.zeros(int(CHAPTER_GAP * RATE), np.float32))
        timeline.chapters.append((chap.title or f"Chapter {number}", start, position / RATE))
    timeline.samples = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return timeline


def _frames(samples: np.ndarray, size: int = 4800) -> list[av.AudioFrame]:
    frames = []
    for start in range(0, len(samples), size):
        piece = np.ascontiguousarray(samples[None, start : start + size])
        frame = av.AudioFrame.from_ndarray(piece, format="flt", layout="mono")
        frame.sample_rate = RATE
        frame.pts = start
        frame.time_base = Fraction(1, RATE)
        frames.append(frame)
    return frames


def _run_filter(samples: np.ndarray, name: str, args: str) -> tuple[np.ndarray, dict[str, str]]:
    """Samples through one FFmpeg audio filter; (output, the last frame's metadata)."""
    graph = av.filter.Graph()
    source = graph.add_abuffer(format="flt", sample_rate=RATE, layout="mono", time_base=Fraction(1, RATE))
    node = graph.add(name, args)
    convert = graph.add("aformat", f"sample_fmts=flt:sample_rates={RATE}:channel_layouts=mono")
    sink = graph.add("abuffersink")
    source.link_to(node)
    node.link_to(convert)
    convert.link_to(sink)
    graph.configure()
    out: list[np.ndarray] = []
    metadata: dict[str, str] = {}

    def drain() -> None:
        while True:
            try:
                frame = graph.pull()
            except (av.BlockingIOError, av.EOFError):
                return
            assert isinstance(frame, av.AudioFrame)
            metadata.update(frame.metadata)
            out.append(frame.to_ndarray().reshape(-1))

    for frame in _frames(samples):
        graph.push(frame)
        drain()
    graph.push(None)
    drain()
    return (np.concatenate(out) if out else np.zeros(0, np.float32)), metadata


def loudness(samples: np.ndarray) -> tuple[float, float]:
    """(integrated loudness in LUFS, true peak in dBTP), EBU R128 (FFmpeg's ebur128 filter)."""
    if len(samples) < RATE // 2:
        return -70.0, -70.0
    _, metadata = _run_filter(samples, "ebur128", "metadata=1:peak=true")
    peak = float(metadata.get("lavfi.r128.true_peak", "0") or 0)
    return float(metadata.get("lavfi.r128.I", "-70")), 20 * np.log10(max(peak, 1e-9))


def normalise(samples: np.ndarray, preset: str) -> np.ndarray:
    """Gain to the preset's integrated loudness, then a true-peak limiter (alimiter) at its ceiling."""
    if preset == "none":
        return samples
    target, ceiling = PRESETS[preset]
    measured, _ = loudness(samples)
    if measured <= -70.0:
        return samples  # silence: nothing to normalise
    gained = (samples * 10 ** ((target - measured) / 20)).astype(np.float32)
    limit = 10 ** (ceiling / 20)
    if np.abs(gained).max(initial=0.0) <= limit:
        return gained
    limited, _ = _run_filter(gained, "alimiter", f"limit={limit:.4f}:level=false:attack=5:release=50")
    return limited[: len(gained)].astype(np.float32)


def m4b(samples: np.ndarray, chapters: list[tuple[str, float, float]], title: str) -> bytes:
    """AAC in an MP4 (iPod) container with chapter markers and titles."""
    out = io.BytesIO()
    with av.open(out, "w", format="ipod") as container:
        container.metadata["title"] = title
        stream = container.add_stream("aac", rate=RATE, layout="mono")
        assert isinstance(stream, av.audio.stream.AudioStream)
        stream.bit_rate = 64_000
        marks: list[Chapter] = [
            {
                "id": i,
                "start": round(start * 1000),
                "end": round(end * 1000),
                "time_base": Fraction(1, 1000),
                "metadata": {"title": name},
            }
            for i, (name, start, end) in enumerate(chapters)
        ]
        container.set_chapters(marks)
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=RATE)
        for frame in [*_frames(samples), None]:
            for converted in resampler.resample(frame):
                for packet in stream.encode(converted):
                    container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


def _stamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def captions(timeline: Timeline, kind: str) -> str:
    lines = ["WEBVTT", ""] if kind == "vtt" else []
    sep = "." if kind == "vtt" else ","
    shown = [(c.speaker, *part) for c in timeline.cues for part in (c.parts or [(c.text, c.start, c.end)])]
    for number, (speaker, said, start, end) in enumerate(shown, 1):
        text = f"<v {speaker}>{said}" if kind == "vtt" else f"{speaker}: {said}"
        lines += [str(number), f"{_stamp(start, sep)} --> {_stamp(end, sep)}", text, ""]
    return "\n".join(lines)


def sidecar(project: Project, timeline: Timeline) -> dict[str, Any]:
    lines = []
    for c in timeline.cues:
        line = {"id": c.line_id, "speaker": c.speaker, "text": c.text, "start": c.start, "end": c.end, "words": c.words}
        if c.parts:
            line["parts"] = [{"text": text, "start": start, "end": end} for text, start, end in c.parts]
        lines.append(line)
    chapters = [{"title": t, "start": round(s, 3), "end": round(e, 3)} for t, s, e in timeline.chapters]
    duration = round(len(timeline.samples) / RATE, 3)
    return {"id": project.id, "name": project.data.name, "duration": duration, "chapters": chapters, "lines": lines}


def export(project: Project, keys: dict[str, str], fmt: str, chapter: int | None, preset: str) -> bytes:
    """The export as bytes (blocking: run it off the event loop)."""
    if fmt not in AUDIO_FORMATS + TEXT_FORMATS:
        raise InvalidRequest(f"'format' must be one of {', '.join(AUDIO_FORMATS + TEXT_FORMATS)}.", param="format")
    if preset not in (*PRESETS, "none"):
        raise InvalidRequest(f"'loudness' must be one of {', '.join(PRESETS)}, none.", param="loudness")
    timeline = assemble(project, keys, chapter)
    if fmt in TEXT_FORMATS:
        if fmt == "json":
            return json.dumps(sidecar(project, timeline), ensure_ascii=False, indent=1).encode()
        return captions(timeline, fmt).encode()
    samples = normalise(timeline.samples, preset)
    if fmt == "m4b":
        return m4b(samples, timeline.chapters, project.data.name)
    return b"".join(encode_stream([AudioChunk(samples, RATE)], fmt))
