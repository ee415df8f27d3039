"""Voice conversion benchmark: real-time factor of converting a 10 s recording into a library voice.

    .venv-engines/bin/python bench/vc_bench.py [--runs 3] [--device auto] [--seconds 10] [--watermark]
                                               [--cases chatterbox-vc:1 chatterbox-vc:2 chatterbox-vc-standard:10]

Full-size random S3Gen checkpoints (compute does not depend on weight values) are built once with
chatterbox-tts's own classes under bench/results/checkpoints, then loaded through TTS Studio's engine
(`chatterbox-vc`: the Turbo meanflow decoder; `chatterbox-vc-standard`: the normal decoder). Measured: the
meanflow decoder at 1 and 2 steps and the normal decoder at 10 steps, each a median of --runs after one
warm-up (which embeds the target voice, then cached), RTF = wall seconds / audio seconds. The watermark is
off unless --watermark (the studio's default is on; it adds the Perth watermarker's time).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CASES = ["chatterbox-vc:1", "chatterbox-vc:2", "chatterbox-vc-standard:10"]  # engine:steps
CHECKPOINTS = {"chatterbox-vc": "s3gen_meanflow.safetensors", "chatterbox-vc-standard": "s3gen.safetensors"}
# hibari-vc (text: hibari speaks, the meanflow decoder re-voices) on request: --cases hibari-vc:2
TEXT = "The museum opens at nine in the morning, and visitors can see paintings from four centuries."


def _checkpoint(engine_id: str) -> Path:
    """A full-size random S3Gen for `engine_id`, built once."""
    engine_id = "chatterbox-vc" if engine_id == "hibari-vc" else engine_id  # the same decoder
    folder = ROOT / "bench" / "results" / "checkpoints" / engine_id
    path = folder / CHECKPOINTS[engine_id]
    if not path.exists():
        import torch
        from chatterbox.models.s3gen import S3Gen
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        s3gen = S3Gen(meanflow=engine_id == "chatterbox-vc")
        save_file({k: v.contiguous() for k, v in s3gen.state_dict().items()}, str(path))
    return folder


def _recording(seconds: float) -> tuple[np.ndarray, int]:
    """Real speech from the bundled clips, `seconds` long, at 24 kHz."""
    import soundfile as sf

    parts = [sf.read(ROOT / "voices" / f"{name}.flac", dtype="float32")[0] for name in ("lark", "heart", "dusk")]
    return np.concatenate(parts)[: int(seconds * 24000)], 24000


def _cpu_seconds() -> float:
    """CPU time of this process, all threads: divided by audio seconds, a figure a busy machine inflates less."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measure(engine: Any, request: Any, runs: int) -> dict[str, float]:
    rtfs, cpus, firsts, audio = [], [], [], 0.0
    for i in range(runs + 1):  # the first run warms up and embeds the voice
        started, cpu = time.perf_counter(), _cpu_seconds()
        first, samples = None, 0
        for chunk in engine.stream(request):
            first = first if first is not None else time.perf_counter() - started
            samples += len(chunk.samples)
        wall = time.perf_counter() - started
        if i:
            audio = samples / 24000
            rtfs.append(wall / audio)
            cpus.append((_cpu_seconds() - cpu) / audio)
            firsts.append(first or wall)
    return {
        "rtf": statistics.median(rtfs),
        "cpu_s_per_audio_s": statistics.median(cpus),
        "first_piece_s": statistics.median(firsts),
        "audio_s": audio,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--watermark", action="store_true")
    parser.add_argument("--cases", nargs="+", default=CASES, help="engine:steps pairs")
    args = parser.parse_args()

    import torch

    from tts_studio.config import Settings
    from tts_studio.engines.base import AudioChunk, SynthesisRequest
    from tts_studio.engines.device import pick_device
    from tts_studio.engines.registry import default_registry
    from tts_studio.services.library import VoiceLibrary

    out = ROOT / "bench" / "results"
    cases = [(case.split(":")[0], int(case.split(":")[1])) for case in args.cases]
    engine_dirs = {engine_id: _checkpoint(engine_id) for engine_id in dict.fromkeys(e for e, _ in cases)}
    settings = Settings(
        engine_dirs=engine_dirs, data_dir=out / "data", cache_dir=out / "cache", watermark=args.watermark
    )
    device = pick_device(args.device)
    reference = VoiceLibrary(out / "data" / "voices", ROOT / "voices").reference("bundled_dusk")
    samples, rate = _recording(args.seconds)
    results: list[dict[str, Any]] = []
    path = out / "vc.json"
    for engine_id in engine_dirs:
        engine = default_registry()[engine_id].factory(settings)
        started = time.perf_counter()
        engine.load(device)
        load_s = time.perf_counter() - started
        for case_id, steps in cases:
            if case_id != engine_id:
                continue
            request = SynthesisRequest(
                text=TEXT if engine_id == "hibari-vc" else "",
                voice="bundled_dusk",
                reference=reference,
                source=AudioChunk(samples, rate),
                params={"steps": steps},
            )
            result = {"engine": engine_id, "steps": steps, "device": device, "load_s": load_s,
                      "threads": torch.get_num_threads(), **_measure(engine, request, args.runs)}  # fmt: skip
            results.append(result)
            print(f"{engine_id:23} {steps:2} steps on {device}: RTF {result['rtf']:.2f} "
                  f"(CPU {result['cpu_s_per_audio_s']:.2f} s per audio s) "
                  f"({result['audio_s']:.1f} s of audio; first piece {result['first_piece_s']:.1f} s; "
                  f"load {load_s:.1f} s)", flush=True)  # fmt: skip
            path.write_text(json.dumps({"runs": args.runs, "watermark": args.watermark, "results": results}, indent=2))
        engine.unload()
    print(f"medians of {args.runs} runs after one warm-up; {args.seconds:g} s recording; JSON in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
