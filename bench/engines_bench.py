"""Engine benchmark on full-size random-weight checkpoints (compute does not depend on weight values).

    .venv-engines/bin/python bench/engines_bench.py [--engines chatterbox voxcpm2 pocket pocket-fp32] [--runs 3]
        [--device auto]

Each engine runs in its own process (so peak memory is its own): build a full-size checkpoint with the
package's own classes (cached under bench/results/checkpoints), load it through TTS Studio's engine class,
clone the bundled Heart voice, then synthesise a sentence --runs times. Reports load time, first-chunk
latency, real-time factor (wall / audio) and peak RSS (and peak CUDA memory on a GPU). Chatterbox's T3 is
crafted to stop after 50 speech tokens (2 s of audio); VoxCPM2 stops where its random stop head says;
pocket-tts (the CPU cloning engine, int8 by default, `pocket-fp32` without quantisation) never stops on its
own here (EOS threshold 1e9), so it speaks the length it allots the text (tokens / 3 + 2 s).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TEXT = "The museum opens at nine in the morning, and visitors can see paintings from four centuries."


def _run(engine_id: str, runs: int, device: str, queue: Any) -> None:
    import torch

    from tests.engines.checkpoints import build_chatterbox, build_pocket, build_voxcpm
    from tts_studio.config import Settings
    from tts_studio.engines.base import SynthesisRequest
    from tts_studio.engines.device import pick_device
    from tts_studio.engines.registry import default_registry
    from tts_studio.services.library import VoiceLibrary

    out = ROOT / "bench" / "results"
    label, engine_id = engine_id, engine_id.removesuffix("-fp32")
    ckpt = out / "checkpoints" / engine_id
    started = time.perf_counter()
    if not (ckpt / "done").exists():
        if engine_id == "chatterbox":
            build_chatterbox(ckpt, tokens=50, layers=None)
        elif engine_id == "pocket":
            build_pocket(ckpt, size="full", eos_threshold=1e9)
        else:
            build_voxcpm(ckpt, "voxcpm2", size="full")
        (ckpt / "done").touch()
    build_s = time.perf_counter() - started
    settings = Settings(
        engine_dirs={engine_id: ckpt},
        data_dir=out / "data",
        cache_dir=out / "cache",
        pocket_quantize=not label.endswith("-fp32"),
    )
    device = pick_device(device) if default_registry()[engine_id].info.gpu else "cpu"
    threads = torch.get_num_threads()
    engine = default_registry()[engine_id].factory(settings)
    started = time.perf_counter()
    engine.load(device)
    load_s = time.perf_counter() - started
    assert torch.get_num_threads() == threads, "loading changed torch's thread count"
    library = VoiceLibrary(out / "data" / "voices", ROOT / "voices")
    reference = library.reference("bundled_heart")
    request = SynthesisRequest(text=TEXT, voice="bundled_heart", reference=reference, params={"seed": 0})
    firsts, rtfs, audio = [], [], 0.0
    for i in range(runs + 1):  # the first run warms up (and encodes the voice)
        t0 = time.perf_counter()
        first, samples, rate = None, 0, 24000
        for chunk in engine.stream(request):
            first = first if first is not None else time.perf_counter() - t0
            samples, rate = samples + len(chunk.samples), chunk.sample_rate
        wall = time.perf_counter() - t0
        if i:
            audio = samples / rate
            firsts.append(first or wall)
            rtfs.append(wall / max(audio, 1e-6))
    cuda_peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    queue.put({
        "engine": label, "device": device, "build_s": build_s, "load_s": load_s, "audio_s": audio,
        "first_chunk_ms": statistics.median(firsts) * 1e3, "rtf": statistics.median(rtfs),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "peak_cuda_gib": cuda_peak,
    })  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", nargs="+", default=None, help="default: every installed one")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    if args.engines is None:
        from tts_studio.engines.registry import default_registry

        registry = default_registry()
        choices = ("chatterbox", "voxcpm2", "pocket", "pocket-fp32")
        args.engines = [e for e in choices if registry[e.removesuffix("-fp32")].installed]
    ctx = mp.get_context("spawn")
    results = []
    for engine_id in args.engines:
        queue = ctx.Queue()
        proc = ctx.Process(target=_run, args=(engine_id, args.runs, args.device, queue))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            print(f"{engine_id}: failed (exit {proc.exitcode})")
            continue
        r = queue.get()
        results.append(r)
        cuda = f", peak CUDA {r['peak_cuda_gib']:.1f} GiB" if r["peak_cuda_gib"] is not None else ""
        print(f"{r['engine']:12} on {r['device']}: load {r['load_s']:.1f} s, first chunk {r['first_chunk_ms']:.0f} ms, "
              f"RTF {r['rtf']:.2f} ({r['audio_s']:.2f} s audio), peak RSS {r['peak_rss_gib']:.1f} GiB{cuda} "
              f"[checkpoint build {r['build_s']:.0f} s]")  # fmt: skip
    out = ROOT / "bench" / "results" / "engines.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"medians of {args.runs} runs after one warm-up; JSON in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
