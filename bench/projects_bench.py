"""A 20,000-character, two-speaker, four-chapter project rendered on the embedded engine with Whisper
verification, in one run:

    python bench/projects_bench.py [--chars 20000]

(a) the render as built (synthesis of the next line overlapping Whisper checking the last): wall time, audio
    length, real-time factor, and each side's busy time (the verification share);
(b) the same lines done one stage after the other (every line synthesised, then every line checked in the
    renderer's batches), so the overlap shows as (synthesis + verification) / wall of (a);
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
from tts_studio.projects.verify import hear, hear_batch
from tts_studio.services.container import build_services
from tts_studio.services.speech import SpeechOrder

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
        sentence = rng.choice(TEMPLATES).format(name=rng.choice(NAMES), place=rng.choice(PLACES), time=time_,
                                                time_cap=time_[0].upper() + time_[1:], thing=rng.choice(THINGS))
        parts.append(rng.choice(["", "Alice: ", "Bob: "]) + sentence)
        size += len(sentence)
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "projects.json")
    args = parser.parse_args()
    text = script(args.chars)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "d", cache_dir=Path(tmp) / "c", log_dir=Path(tmp) / "l",
                            idle_unload_seconds=-1)  # fmt: skip
        services = build_services(settings, default_registry())
        projects, renderer = services.projects, services.projects.renderer
        project = projects.create("bench", text, {"Narrator": "alloy", "Alice": "nova", "Bob": "echo"}, "tts-1", [])
        lines = project.lines()
        warm = services.speech.plan(SpeechOrder(model="tts-1", input="Warm up.", voice="alloy"))
        b"".join(services.speech.speak([warm], "pcm"))
        hear(services.transcriber, np.zeros(24000, np.float32), "")
        renderer.start()
        started = time.monotonic()
        renderer.submit(project.id)
        version = 0
        while projects.store.get(project.id).data["status"] not in ("done", "failed", "cancelled"):
            version = renderer.wait_for_change(version, 5.0)
        wall = time.monotonic() - started
        view = projects.view(projects.store.get(project.id))
        stats: dict[str, Any] = view["last_render"]
        audio = json.loads(projects.export(project.id, "json", None, "none"))["duration"]
        flagged = sum(line["flagged"] for chapter in view["chapters"] for line in chapter["lines"])
        # (b) one stage after the other, on the same lines
        entries = services.dictionary.entries()
        spoken = [(project.spoken(line, entries, ()), project.voice_for(line.speaker)) for line in lines]
        began = time.monotonic()
        takes = []
        for sentence, voice in spoken:
            plan = services.speech.plan(SpeechOrder(model="tts-1", input=sentence, voice=voice))
            pcm = b"".join(services.speech.speak([plan], "pcm", priority=Priority.BACKGROUND))
            takes.append(np.frombuffer(pcm, "<i2").astype(np.float32) / 32768)
        synthesis_alone = time.monotonic() - began
        began = time.monotonic()
        batch: list[tuple[np.ndarray, str]] = []
        for samples, (sentence, _) in zip(takes, spoken, strict=True):  # the renderer's batching
            if batch and sum(len(s) for s, _ in batch) + len(samples) > BATCH_SECONDS * 24000:
                hear_batch(services.transcriber, batch)
                batch = []
            batch.append((samples, sentence))
        hear_batch(services.transcriber, batch)
        verification_alone = time.monotonic() - began
        began = time.monotonic()
        for samples, (sentence, _) in list(zip(takes, spoken, strict=True))[:20]:
            hear(services.transcriber, samples, sentence)
        per_line_call = (time.monotonic() - began) / 20
        renderer.shutdown()
    report = {
        "chars": len(text), "lines": len(lines), "audio_seconds": round(audio, 1), "flagged": flagged,
        "render_wall_seconds": round(wall, 2), "render_rtf": round(wall / audio, 4),
        "render_synthesis_busy_seconds": stats["synthesis_seconds"],
        "render_verification_busy_seconds": stats["verification_seconds"],
        "render_whisper_calls": stats["verification_calls"],
        "verification_share": round(stats["verification_seconds"]
                                    / (stats["synthesis_seconds"] + stats["verification_seconds"]), 3),
        "sequential_synthesis_seconds": round(synthesis_alone, 2),
        "sequential_verification_seconds": round(verification_alone, 2),
        "sequential_total_seconds": round(synthesis_alone + verification_alone, 2),
        "overlap_speedup": round((synthesis_alone + verification_alone) / wall, 2),
        "whisper_call_per_line_seconds": round(per_line_call, 3),
        "whisper_batched_per_line_seconds": round(verification_alone / len(lines), 3),
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"{report['chars']} chars, {report['lines']} lines, {report['audio_seconds']} s of audio, "
          f"{flagged} flagged: render {wall:.1f} s (RTF {report['render_rtf']}), busy synthesis "
          f"{stats['synthesis_seconds']} s + verification {stats['verification_seconds']} s (verification share "
          f"{report['verification_share']:.0%}); one stage after the other: synthesis {synthesis_alone:.1f} s then "
          f"verification {verification_alone:.1f} s = {report['sequential_total_seconds']} s -> overlapped "
          f"{report['overlap_speedup']}x faster; Whisper per line: {per_line_call * 1000:.0f} ms alone, "
          f"{report['whisper_batched_per_line_seconds'] * 1000:.0f} ms batched")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
