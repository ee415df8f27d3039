"""Serving overhead benchmark: the server against the raw engine and encoder, in one run, interleaved.

    python bench/speech_bench.py [--runs 5] [--clients 8]

(a) time to first byte of a streamed mp3 (3 sentences) vs the raw engine's first chunk in-process;
(b) real-time factor of a ~4,000-character mp3 request, end to end, vs max(raw engine RTF, raw mp3 encoder
    RTF): with synthesis and encoding overlapped the server should approach the slower stage. Every RTF
    is computed on the server's own decoded output length;
(c) N concurrent mp3 streams: underruns per stream (playback starting at the first byte, 64 kb/s CBR) and
    aggregate audio-seconds per wall-second.
Raw and server runs alternate; medians of --runs. The server runs as `python -m tts_studio serve`.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import av
import httpx
from _server import running_server

from tts_studio.audio.encode import StreamEncoder
from tts_studio.engines.base import AudioChunk

THREE = (
    "The museum opens at nine in the morning. Visitors can see paintings from four centuries. "
    "Guided tours leave every hour from the main hall."
)
LONG = (
    "Once upon a time, in a quiet village by the sea, there lived an old clockmaker who repaired "
    "every watch the fishermen brought him. " * 40
)[:4000]


def speech(http: httpx.Client, url: str, text: str, fmt: str) -> tuple[float, float, int]:
    """(seconds to first body byte, seconds to last byte, bytes) of one streamed request."""
    body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": fmt}
    started = time.perf_counter()
    first, size = None, 0
    with http.stream("POST", f"{url}/v1/audio/speech", json=body) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            if first is None and chunk:
                first = time.perf_counter() - started
            size += len(chunk)
    assert first is not None
    return first, time.perf_counter() - started, size


def raw_first_chunk(tts: Any, text: str) -> float:
    started = time.perf_counter()
    next(iter(tts.stream(text)))
    return time.perf_counter() - started


def raw_engine(tts: Any, text: str) -> tuple[float, list[Any]]:
    """(seconds the engine alone takes for `text`, its pieces)."""
    started = time.perf_counter()
    pieces = list(tts.stream(text))
    return time.perf_counter() - started, pieces


def raw_encoder(pieces: list[Any]) -> float:
    """Seconds one mp3 encoder takes for audio that is already there."""
    encoder = StreamEncoder("mp3")
    started = time.perf_counter()
    for piece in pieces:
        encoder.write(AudioChunk(piece, 24000))
    encoder.close()
    return time.perf_counter() - started


def mp3_seconds(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        return sum(frame.samples for frame in container.decode(audio=0)) / 24000


MP3_BYTES_PER_SECOND = 64_000 / 8


def concurrent(url: str, clients: int, text: str) -> dict[str, Any]:
    """Every client streams mp3 at once; playback starts at its first byte, in real time."""
    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(clients)

    def one() -> None:
        with httpx.Client(timeout=120) as http:
            barrier.wait()
            body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "mp3"}
            start = time.perf_counter()
            t0, received, underruns, starving = None, 0.0, 0, False
            data = bytearray()
            with http.stream("POST", f"{url}/v1/audio/speech", json=body) as response:
                for chunk in response.iter_raw():
                    data += chunk
                    now = time.perf_counter()
                    if t0 is None:
                        t0 = now
                    played = now - t0
                    if received < played and not starving:
                        underruns, starving = underruns + 1, True
                    elif received >= played:
                        starving = False
                    received += len(chunk) / MP3_BYTES_PER_SECOND
            end = time.perf_counter()
            results.append({"ttfb": (t0 or end) - start, "underruns": underruns, "audio": mp3_seconds(bytes(data)),
                            "end": end})  # fmt: skip

    threads = [threading.Thread(target=one) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = max(r["end"] for r in results) - started
    return {
        "underruns": [r["underruns"] for r in results],
        "ttfb": [r["ttfb"] for r in results],
        "audio_seconds_per_wall_second": sum(r["audio"] for r in results) / wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "speech.json")
    args = parser.parse_args()

    from hibari import Hibari

    tts = Hibari(threads=1)
    tts("Warm up.")
    med = statistics.median
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_server(Path(tmp), {"TTS_STUDIO_MAX_ACTIVE_REQUESTS": "64"}) as url,
    ):
        raw_ttfb, srv_ttfb, raw_syn, raw_enc, srv_long = [], [], [], [], []
        with httpx.Client(timeout=300) as http:
            speech(http, url, THREE, "mp3")  # load the engine
            long_mp3 = http.post(f"{url}/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": LONG})
            audio_s = mp3_seconds(long_mp3.content)  # the server's own output length
            for _ in range(args.runs):  # interleaved: raw, server, raw, server...
                raw_ttfb.append(raw_first_chunk(tts, THREE))
                srv_ttfb.append(speech(http, url, THREE, "mp3")[0])
            for _ in range(args.runs):
                seconds, pieces = raw_engine(tts, LONG)
                raw_syn.append(seconds)
                raw_enc.append(raw_encoder(pieces))
                srv_long.append(speech(http, url, LONG, "mp3")[1])
        load = [concurrent(url, args.clients, LONG[:1200]) for _ in range(args.runs)]

    report = {
        "runs": args.runs,
        "a_ttfb_ms": {
            "raw_engine_first_chunk": med(raw_ttfb) * 1e3,
            "server_first_byte": med(srv_ttfb) * 1e3,
            "difference": (med(srv_ttfb) - med(raw_ttfb)) * 1e3,
        },
        "b_long_request": {
            "chars": len(LONG),
            "audio_seconds": audio_s,
            "raw_engine_rtf": med(raw_syn) / audio_s,
            "raw_mp3_encoder_rtf": med(raw_enc) / audio_s,
            "server_rtf": med(srv_long) / audio_s,
            "ratio_to_slower_stage": med(srv_long) / max(med(raw_syn), med(raw_enc)),
            "ratio_to_sum_of_stages": med(srv_long) / (med(raw_syn) + med(raw_enc)),
        },
        "c_concurrent": {
            "clients": args.clients,
            "underruns_per_stream_max": max(max(r["underruns"]) for r in load),
            "underruns_total_median": med(sum(r["underruns"]) for r in load),
            "ttfb_ms_median": med(med(r["ttfb"]) for r in load) * 1e3,
            "audio_seconds_per_wall_second": med(r["audio_seconds_per_wall_second"] for r in load),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    a, b, c = report["a_ttfb_ms"], report["b_long_request"], report["c_concurrent"]
    print(
        f"(a) TTFB mp3, 3 sentences: server {a['server_first_byte']:.1f} ms vs raw engine first chunk "
        f"{a['raw_engine_first_chunk']:.1f} ms -> +{a['difference']:.1f} ms"
    )
    print(
        f"(b) {b['chars']} chars ({b['audio_seconds']:.0f} s audio): server RTF {b['server_rtf']:.4f}; raw engine "
        f"{b['raw_engine_rtf']:.4f}, raw mp3 encoder {b['raw_mp3_encoder_rtf']:.4f} -> "
        f"{b['ratio_to_slower_stage']:.2f}x the slower stage ({b['ratio_to_sum_of_stages']:.2f}x their sum)"
    )
    print(
        f"(c) {c['clients']} concurrent mp3 streams: max underruns/stream {c['underruns_per_stream_max']}, "
        f"median TTFB {c['ttfb_ms_median']:.0f} ms, {c['audio_seconds_per_wall_second']:.1f} audio-s per wall-s"
    )
    print(f"medians of {args.runs} runs; JSON in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
