"""Wyoming time to first audio chunk against the HTTP route's time to first byte, in one run, interleaved.

    python bench/wyoming_bench.py [--runs 7]

Both ask the same server (`python -m tts_studio serve --wyoming PORT`) for the same sentence as raw 24 kHz
PCM; medians of --runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from _server import running_server
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize, SynthesizeVoice

TEXT = "Turning on the kitchen lights. The temperature outside is twelve degrees."


def http_ttfb(http: httpx.Client, url: str) -> float:
    """From the request (on an open keep-alive connection) to its first body byte."""
    body = {"model": "tts-1", "voice": "alloy", "input": TEXT, "response_format": "pcm"}
    started = time.perf_counter()
    first = None
    with http.stream("POST", f"{url}/v1/audio/speech", json=body, timeout=60) as response:
        for chunk in response.iter_raw():
            if chunk and first is None:
                first = time.perf_counter() - started
    assert first is not None
    return first


async def wyoming_first_chunk(port: int) -> float:
    """From the synthesize event (on an open connection) to the first audio-chunk event."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        started = time.perf_counter()
        await client.write_event(Synthesize(text=TEXT, voice=SynthesizeVoice(name="alloy")).event())
        first = None
        while True:
            event = await client.read_event()
            assert event is not None
            if event.type == "audio-chunk" and first is None:
                first = time.perf_counter() - started
            if event.type == "audio-stop":
                assert first is not None
                return first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "wyoming.json")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp), {"TTS_STUDIO_WYOMING_PORT": str(port)}) as url:
        http, wyoming = [], []
        with httpx.Client() as client:
            http_ttfb(client, url)  # load the engine
            asyncio.run(wyoming_first_chunk(port))
            for _ in range(args.runs):
                http.append(http_ttfb(client, url))
                wyoming.append(asyncio.run(wyoming_first_chunk(port)))
    report = {"runs": args.runs, "http_first_byte_ms": statistics.median(http) * 1e3,
              "wyoming_first_audio_chunk_ms": statistics.median(wyoming) * 1e3}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"pcm, one sentence pair: HTTP first byte {report['http_first_byte_ms']:.1f} ms, Wyoming first "
          f"audio-chunk {report['wyoming_first_audio_chunk_ms']:.1f} ms (medians of {args.runs})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
