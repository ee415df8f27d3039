"""Voice library benchmark: upload latency with and without the automatic transcript.

    python bench/voices_bench.py [--runs 5]

Uploads a 10 s speech clip (made by the embedded engine) to a running studio: with a transcript given
(decode + normalise + atomic store), and without one (the same plus Whisper tiny.en). Reports medians of
--runs uploads after one cold upload, the Whisper time measured in-process on the same clip, and the
time from upload to the first byte of speech in the new voice when a cloning engine is installed.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import soundfile as sf
from _server import running_server
from hibari import Hibari

from tts_studio.audio.decode import AudioLimits, decode_audio
from tts_studio.services.transcription import Transcriber

TEXT = (
    "Every evening, the old lighthouse keeper climbed the spiral stairs, polished the great lens, "
    "and watched the ships find their way home across the dark water."
)


def upload(http: httpx.Client, url: str, data: bytes, name: str, transcript: str | None) -> tuple[float, str]:
    fields = {"name": name, **({"transcript": transcript} if transcript else {})}
    started = time.perf_counter()
    response = http.post(f"{url}/v1/audio/voices", data=fields, files={"audio_sample": ("clip.wav", data)})
    response.raise_for_status()
    return time.perf_counter() - started, response.json()["id"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--engine", help="cloning engine for the upload -> first audio figure (default: first installed)"
    )
    args = parser.parse_args()
    buf = io.BytesIO()
    sf.write(buf, Hibari(threads=1)(TEXT, seed=0), 24000, format="WAV")
    clip = buf.getvalue()
    audio = decode_audio(clip, AudioLimits())
    transcriber = Transcriber()
    transcriber.transcribe(audio)  # load
    whisper = []
    for _ in range(args.runs):
        started = time.perf_counter()
        transcriber.transcribe(audio)
        whisper.append(time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp)) as url, httpx.Client(timeout=120) as http:
        cold, _ = upload(http, url, clip, "cold", None)
        given = [upload(http, url, clip, f"given {i}", TEXT)[0] for i in range(args.runs)]
        auto = [upload(http, url, clip, f"auto {i}", None)[0] for i in range(args.runs)]
        engines = [m["id"] for m in http.get(f"{url}/v1/models").json()["data"] if m.get("cloning")]
        engine = args.engine or (engines[0] if engines else None)
        first_audio = None
        if engine:
            body = {"model": engine, "voice": "alloy", "input": "Warm up.", "response_format": "pcm"}
            http.post(f"{url}/v1/audio/speech", json=body).raise_for_status()  # load the engine first
            started = time.perf_counter()
            _, voice = upload(http, url, clip, "first audio", TEXT)
            body = {"model": engine, "voice": voice, "input": "Hello there.", "response_format": "pcm"}
            with http.stream("POST", f"{url}/v1/audio/speech", json=body) as response:
                response.raise_for_status()
                next(response.iter_raw())
            first_audio = (engine, time.perf_counter() - started)

    med = statistics.median
    print(f"clip: {audio.duration:.1f} s; medians of {args.runs} uploads")
    print(f"upload with transcript given : {med(given) * 1e3:7.1f} ms")
    print(f"upload with auto transcript  : {med(auto) * 1e3:7.1f} ms (first, cold Whisper load: {cold * 1e3:.0f} ms)")
    print(f"Whisper tiny.en in-process   : {med(whisper) * 1e3:7.1f} ms (RTF {med(whisper) / audio.duration:.3f})")
    if first_audio:
        print(f"upload -> first audio byte   : {first_audio[1] * 1e3:7.1f} ms on {first_audio[0]} (engine loaded)")
    else:
        print("upload -> first audio byte   : n/a (no cloning engine installed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
