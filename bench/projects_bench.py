"""A 20,000-character, two-speaker, four-chapter project rendered on the embedded engine with Whisper
verification, in one run:

    python bench/projects_bench.py [--chars 20000]

(a) the render as built (synthesis of the next lines overlapping Whisper checking the last ones): wall time,
    audio length, real-time factor, and each side's busy time (the verification share);
(b) the same lines done one stage after the other (every line synthesised, then every line checked in the
    renderer's batches): the overlap speed-up is (synthesis + verification) / render wall. Both orders are
    run (render then stages; stages then a fresh render) so neither side profits from going second;
(c) Whisper's cost per line called one take at a time against batched (it pads every call to 30 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tts_studio.audio.decode import pcm16_to_float
from tts_studio.config import Settings
from tts_studio.engines.registry import default_registry
from tts_studio.engines.scheduler import Priority
from tts_studio.projects.render import BATCH_SECONDS
from tts_studio.projects.script import Part, strip_tags
from tts_studio.projects.store import RATE, Project
from tts_studio.projects.verify import LineAudio, batch_seconds, hear, hear_batch
from tts_studio.services.plan import SpeechOrder
from tts_studio.studio import Services, build_services

CAST = {"Narrator": "alloy", "Alice": "nova", "Bob": "echo"}
MODEL = "tts-1"

NAMES = ["Anna", "Tom", "Maria", "Peter", "Lucy", "James", "Sarah", "David"]
PLACES = ["the market", "the river", "the old mill", "the school", "the station", "the garden", "the harbour"]
TIMES = ["in the morning", "after lunch", "late in the evening", "before sunrise", "on Sunday", "at noon"]
THINGS = ["a basket of apples", "a small red book", "fresh bread", "a letter from home", "a warm coat"]
TEMPLATES = [
    "{name} walked to {place} {time}.",
    "{time_cap}, {name} found {thing} near {place}.",
    "Nobody at {place} had seen {thing} for a long time.",
    "{name} said that {place} was busier than usual {time}.",
    "We carried {thing} all the way from {place}, and nobody complained.",
    "The wind was cold {time}, so {name} wore {thing}.",
]


def script(chars: int, seed: int = 7) -> str:
    """Plain narrative sentences from templates (speakable and checkable), two speakers, four chapters."""
    rng = random.Random(seed)
    parts, chapter, size = [], 0, 0
    while size < chars:
        if size >= chapter * chars / 4:
            chapter += 1
            parts.append(f"# Chapter {chapter}")
        time_ = rng.choice(TIMES)
        sentence = rng.choice(TEMPLATES).format(
            name=rng.choice(NAMES),
            place=rng.choice(PLACES),
            time=time_,
            time_cap=time_[0].upper() + time_[1:],
            thing=rng.choice(THINGS),
        )
        parts.append(rng.choice(["", "Alice: ", "Bob: "]) + sentence)
        size += len(sentence)
    return "\n".join(parts)


def synthesize(services: Services, text: str, voice: str) -> np.ndarray:
    """`text` as float samples, made as the renderer makes a part: one background speech job, pcm16 at RATE."""
    plan = services.speech.plan(SpeechOrder(model=MODEL, input=text, voice=voice))
    job = services.jobs.admit(Priority.BACKGROUND)
    try:
        job.start([plan], "pcm", sample_rate=RATE)
        return pcm16_to_float(b"".join(job))
    finally:
        job.close()


def expected(parts: list[Part]) -> str:
    """The words Whisper should hear in a line (as the renderer checks it: tags are sounds, not words)."""
    return " ".join(strip_tags(part.text) for part in parts)


async def until_done(services: Services, project_id: str) -> None:
    """Wait on the renderer's change notices, holding no thread, until the project's render job is gone (cheap:
    the bench must not load the worker it measures)."""
    renderer = services.projects.renderer
    version = renderer.version  # read before the check: a job ending after it bumps the version
    while renderer.job(project_id) is not None:
        version = await renderer.next_change(version)


def render(services: Services, text: str) -> tuple[float, dict[str, Any], Project]:
    """(wall seconds, the render's stats, the project) for one full render of `text` as built."""
    projects = services.projects
    project = projects.create("bench", text, CAST, MODEL, [])
    started = time.monotonic()
    projects.renderer.submit(project.id)
    asyncio.run(until_done(services, project.id))
    wall = time.monotonic() - started
    data = projects.store.get(project.id).data
    if data.last_render is None:
        raise RuntimeError(f"the render recorded no stats (status {data.status}: {data.error})")
    return wall, data.last_render.model_dump(), project


def sequential(services: Services, project: Project) -> tuple[float, float]:
    """(synthesis seconds, verification seconds): every line synthesised part by part as the renderer does,
    then every line checked in the renderer's batches."""
    lines = services.projects.renderer.spoken_lines(project)
    began = time.monotonic()
    takes = []
    for line, parts, _ in lines:
        voice = project.voice_for(line.speaker)
        pieces = [synthesize(services, part.text, voice) for part in parts]
        takes.append(LineAudio(pieces, [part.pause_after for part in parts]))
    synthesis = time.monotonic() - began
    began = time.monotonic()
    batch: list[tuple[np.ndarray, str]] = []
    for audio, (_, parts, _) in zip(takes, lines, strict=True):  # the renderer's batching
        if batch and batch_seconds([len(s) for s, _ in batch] + [len(audio.heard)]) > BATCH_SECONDS:
            hear_batch(services.transcriber, batch)
            batch = []
        batch.append((audio.heard, expected(parts)))
    hear_batch(services.transcriber, batch)
    return synthesis, time.monotonic() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "projects.json")
    args = parser.parse_args()
    text = script(args.chars)
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "d", cache_dir=Path(tmp) / "c", log_dir=Path(tmp) / "l", idle_unload_seconds=-1
        )
        services = build_services(settings, default_registry())
        synthesize(services, "Warm up.", "alloy")
        hear(services.transcriber, np.zeros(24000, np.float32), "")
        services.projects.renderer.start()
        for order in ("render first", "stages first"):
            if order == "stages first":
                synthesis, verification = sequential(
                    services, services.projects.create("stages", text, CAST, MODEL, [])
                )
            wall, stats, project = render(services, text)
            if order == "render first":
                synthesis, verification = sequential(services, project)
            runs[order] = {
                "render_wall_seconds": round(wall, 2),
                "render_stats": stats,
                "sequential_synthesis_seconds": round(synthesis, 2),
                "sequential_verification_seconds": round(verification, 2),
                "overlap_speedup": round((synthesis + verification) / wall, 2),
            }
        view = services.projects.view(services.projects.store.get(project.id))
        audio = json.loads(services.projects.export(project.id, "json", None, "none"))["duration"]
        flagged = sum(line["flagged"] for chapter in view["chapters"] for line in chapter["lines"])
        takes = []
        for _, parts, key in services.projects.renderer.spoken_lines(project)[:20]:
            take = project.load_take(key)
            if take is None:
                raise RuntimeError(f"the render left no take {key}")
            takes.append((take.samples, expected(parts)))
        began = time.monotonic()
        for samples, sentence in takes:
            hear(services.transcriber, samples, sentence)
        per_line_call = (time.monotonic() - began) / len(takes)
        services.projects.renderer.shutdown()
    first = runs["render first"]
    stats = first["render_stats"]
    busy = stats["synthesis_seconds"] + stats["verification_seconds"]
    lines = len(project.lines())
    report = {
        "chars": len(text),
        "lines": lines,
        "audio_seconds": round(audio, 1),
        "flagged": flagged,
        "render_rtf": round(first["render_wall_seconds"] / audio, 4),
        "verification_share": round(stats["verification_seconds"] / busy, 3),
        "whisper_call_per_line_seconds": round(per_line_call, 3),
        "whisper_batched_per_line_seconds": round(stats["verification_seconds"] / max(1, lines), 3),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(
        f"{report['chars']} chars, {lines} lines, {report['audio_seconds']} s of audio, {flagged} flagged; "
        f"RTF {report['render_rtf']}; verification share {report['verification_share']:.0%}; Whisper per line "
        f"{per_line_call * 1000:.0f} ms called alone, "
        f"{report['whisper_batched_per_line_seconds'] * 1000:.0f} ms batched in the render"
    )
    for order, run in runs.items():
        s = run["render_stats"]
        print(
            f"  {order}: render {run['render_wall_seconds']} s (busy synthesis {s['synthesis_seconds']} s + "
            f"verification {s['verification_seconds']} s in {s['verification_calls']} Whisper calls); stages "
            f"one after the other {run['sequential_synthesis_seconds']} + {run['sequential_verification_seconds']}"
            f" s -> overlap speed-up {run['overlap_speedup']}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
