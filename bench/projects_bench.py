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
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tts_studio.config import Settings
from tts_studio.engines.registry import default_registry
from tts_studio.engines.scheduler import Priority
from tts_studio.projects.render import BATCH_SECONDS
from tts_studio.projects.verify import batch_seconds, hear, hear_batch
from tts_studio.services.speech import SpeechOrder
from tts_studio.studio import build_services

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


def render(services: Any, text: str) -> tuple[float, dict[str, Any], Any]:
    """(wall seconds, the render's stats, the project) for one full render of `text` as built."""
    projects, renderer = services.projects, services.projects.renderer
    project = projects.create("bench", text, {"Narrator": "alloy", "Alice": "nova", "Bob": "echo"}, "tts-1", [])
    started = time.monotonic()
    renderer.submit(project.id)
    version = 0
    while renderer.job(project.id) is not None:  # cheap: the bench must not load the worker it measures
        version = renderer.wait_for_change(version, 5.0)
    wall = time.monotonic() - started
    return wall, projects.store.get(project.id).data["last_render"], project


def sequential(services: Any, project: Any) -> tuple[float, float]:
    """(synthesis seconds, verification seconds): every line synthesised, then checked in the same batches."""
    entries = services.dictionary.entries()
    spoken = [(project.spoken(line, entries, ()), project.voice_for(line.speaker)) for line in project.lines()]
    began = time.monotonic()
    takes = []
    for sentence, voice in spoken:
        plan = services.speech.plan(SpeechOrder(model="tts-1", input=sentence, voice=voice))
        pcm = b"".join(services.speech.speak([plan], "pcm", priority=Priority.BACKGROUND))
        takes.append(np.frombuffer(pcm, "<i2").astype(np.float32) / 32768)
    synthesis = time.monotonic() - began
    began = time.monotonic()
    batch: list[tuple[np.ndarray, str]] = []
    for samples, (sentence, _) in zip(takes, spoken, strict=True):  # the renderer's batching
        if batch and batch_seconds([len(s) for s, _ in batch] + [len(samples)]) > BATCH_SECONDS:
            hear_batch(services.transcriber, batch)
            batch = []
        batch.append((samples, sentence))
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
        settings = Settings(data_dir=Path(tmp) / "d", cache_dir=Path(tmp) / "c", log_dir=Path(tmp) / "l",
                            idle_unload_seconds=-1)  # fmt: skip
        services = build_services(settings, default_registry())
        warm = services.speech.plan(SpeechOrder(model="tts-1", input="Warm up.", voice="alloy"))
        b"".join(services.speech.speak([warm], "pcm"))
        hear(services.transcriber, np.zeros(24000, np.float32), "")
        services.projects.renderer.start()
        for order in ("render first", "stages first"):
            if order == "stages first":
                cast = {"Narrator": "alloy", "Alice": "nova", "Bob": "echo"}
                synthesis, verification = sequential(
                    services, services.projects.create("stages", text, cast, "tts-1", [])
                )
            wall, stats, project = render(services, text)
            if order == "render first":
                synthesis, verification = sequential(services, project)
            runs[order] = {"render_wall_seconds": round(wall, 2), "render_stats": stats,
                           "sequential_synthesis_seconds": round(synthesis, 2),
                           "sequential_verification_seconds": round(verification, 2),
                           "overlap_speedup": round((synthesis + verification) / wall, 2)}  # fmt: skip
        view = services.projects.view(services.projects.store.get(project.id))
        audio = json.loads(services.projects.export(project.id, "json", None, "none"))["duration"]
        flagged = sum(line["flagged"] for chapter in view["chapters"] for line in chapter["lines"])
        takes = [(project.load_take(key).samples, project.line(line_id).text)
                 for line_id, key in list(services.projects.keys(project).items())[:20]]  # fmt: skip
        began = time.monotonic()
        for samples, sentence in takes:
            hear(services.transcriber, samples, sentence)
        per_line_call = (time.monotonic() - began) / len(takes)
        services.projects.renderer.shutdown()
    first = runs["render first"]
    stats = first["render_stats"]
    busy = stats["synthesis_seconds"] + stats["verification_seconds"]
    report = {
        "chars": len(text), "lines": len(project.lines()), "audio_seconds": round(audio, 1), "flagged": flagged,
        "render_rtf": round(first["render_wall_seconds"] / audio, 4),
        "verification_share": round(stats["verification_seconds"] / busy, 3),
        "whisper_call_per_line_seconds": round(per_line_call, 3),
        "whisper_batched_per_line_seconds": round(stats["verification_seconds"] / max(1, len(project.lines())), 3),
        "runs": runs,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"{report['chars']} chars, {report['lines']} lines, {report['audio_seconds']} s of audio, {flagged} "
          f"flagged; RTF {report['render_rtf']}; verification share {report['verification_share']:.0%}; Whisper "
          f"per line {per_line_call * 1000:.0f} ms called alone, "
          f"{report['whisper_batched_per_line_seconds'] * 1000:.0f} ms batched in the render")  # fmt: skip
    for order, run in runs.items():
        s = run["render_stats"]
        print(f"  {order}: render {run['render_wall_seconds']} s (busy synthesis {s['synthesis_seconds']} s + "
              f"verification {s['verification_seconds']} s in {s['verification_calls']} Whisper calls); stages "
              f"one after the other {run['sequential_synthesis_seconds']} + {run['sequential_verification_seconds']}"
              f" s -> overlap speed-up {run['overlap_speedup']}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
