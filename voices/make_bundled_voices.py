"""Regenerate the bundled reference voices with the embedded engine (Apache-2.0 output, redistributable).

    python voices/make_bundled_voices.py

Three clips of hibari's `heart` voice, two of them pitch-shifted (FFmpeg asetrate + atempo, via PyAV)
so a cloning engine has distinct defaults out of the box. Deterministic (fixed seed).
"""

from __future__ import annotations

import itertools
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from hibari import Hibari

HERE = Path(__file__).resolve().parent
RATE = 24000
VOICES = [
    ("bundled_heart", "Heart", 1.0, "The morning light settled over the quiet harbor, and the boats rocked gently "
     "as the fishermen prepared their nets for another long day at sea."),
    ("bundled_dusk", "Dusk", 0.82, "Every evening, the old lighthouse keeper climbed the spiral stairs, "
     "polished the great lens, and watched the ships find their way home."),
    ("bundled_lark", "Lark", 1.12, "We packed a picnic of fresh bread, ripe cherries and cold lemonade, then "
     "cycled along the river until we found the perfect shady spot."),
]  # fmt: skip


def pitch_shift(samples: np.ndarray, factor: float) -> np.ndarray:
    if factor == 1.0:
        return samples
    graph = av.filter.Graph()
    src = graph.add_abuffer(format="flt", sample_rate=RATE, layout="mono", time_base=Fraction(1, RATE))
    chain = [graph.add("asetrate", str(int(RATE * factor))), graph.add("aresample", str(RATE)),
             graph.add("atempo", f"{1 / factor:.6f}"), graph.add("abuffersink")]  # fmt: skip
    src.link_to(chain[0])
    for a, b in itertools.pairwise(chain):
        a.link_to(b)
    graph.configure()
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1).astype(np.float32), format="flt", layout="mono")
    frame.sample_rate, frame.pts, frame.time_base = RATE, 0, Fraction(1, RATE)
    graph.push(frame)
    graph.push(None)
    out = []
    while True:
        try:
            out.append(graph.pull().to_ndarray().reshape(-1))
        except (av.BlockingIOError, av.EOFError):
            break
    return np.concatenate(out)


def main() -> None:
    tts = Hibari(threads=1)
    manifest = []
    for voice_id, name, factor, text in VOICES:
        audio = pitch_shift(tts(text, seed=0), factor)
        audio = audio * (0.89 / float(np.abs(audio).max()))
        file = f"{voice_id.removeprefix('bundled_')}.flac"
        sf.write(str(HERE / file), audio, RATE, format="FLAC", subtype="PCM_16")
        manifest.append({"id": voice_id, "name": name, "file": file, "language": "en", "transcript": text,
                         "license": "Apache-2.0 (generated with hibari-tts 0.2.1, voice heart)"})  # fmt: skip
        print(f"{file}: {len(audio) / RATE:.1f} s")
    (HERE / "voices.json").write_text(json.dumps({"voices": manifest}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
