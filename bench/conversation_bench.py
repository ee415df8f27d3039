"""Conversation latency in one run, against a real LLM server (`transformers serve` on the tiny test model,
tests/llm_upstream.py; needs .venv-engines) and `python -m tts_studio serve` pointed at it:

    python bench/conversation_bench.py [--runs 7]

(a) Realtime added latency: `response.create` -> first `response.output_audio.delta`, minus the upstream's
    own time to its first speakable chunk (the same request streamed straight from the upstream and cut
    by the same TextFeed), against the raw embedded engine's time to its first piece for that chunk, both
    alone and while the upstream goes on writing (on two cores a CPU LLM slows the engine; the fair
    baseline is the same turn done by hand).
(b) Chat proxy overhead per streamed token: the same 200-token stream straight from the upstream and
    through /v1/chat/completions, interleaved; (proxied - direct) / tokens.
Medians of --runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _server import running_server
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.llm_upstream import MODEL_ID, Upstream, build_model
from tts_studio.services.text_feed import TextFeed

INSTRUCTIONS = "Answer briefly."
QUESTION = "What is the weather like by the river?"
REPLY_TOKENS = 60


def upstream_first_chunk(http: httpx.Client, upstream: str, tts: Any) -> tuple[float, str, float]:
    """The Realtime turn done by hand: (seconds to the first chunk TextFeed would speak, that chunk, seconds
    the raw engine takes to its first piece of it while the upstream goes on writing the rest)."""
    messages = [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": QUESTION}]
    body = {"model": MODEL_ID, "messages": messages, "stream": True, "max_tokens": REPLY_TOKENS}
    feed = TextFeed()
    started = time.perf_counter()
    first: tuple[float, str, float] | None = None
    with http.stream("POST", f"{upstream}/chat/completions", json=body) as response:
        for line in response.iter_lines():  # read to the end: an abandoned stream keeps the upstream busy
            if not line.startswith("data:") or "[DONE]" in line:
                continue
            delta = json.loads(line[5:])["choices"][0]["delta"].get("content")
            if delta:
                feed.write(delta)
            if feed.ready and first is None:
                first = (time.perf_counter() - started, next(iter(feed)), 0.0)
                engine_started = time.perf_counter()
                next(iter(tts.stream(first[1])))
                first = (*first[:2], time.perf_counter() - engine_started)
    assert first is not None, "the upstream wrote too little for one chunk"
    return first


def realtime_first_audio(url: str) -> float:
    """Seconds from sending `response.create` to the first audio delta (a fresh session per run)."""
    ws_url = url.replace("http", "ws") + "/v1/realtime?model=gpt-realtime"
    with connect(ws_url, max_size=None) as ws:
        ws.recv()  # session.created
        ws.send(json.dumps({"type": "session.update",
                            "session": {"instructions": INSTRUCTIONS, "max_output_tokens": REPLY_TOKENS}}))  # fmt: skip
        ws.recv()
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": QUESTION}]}
        ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
        ws.recv(), ws.recv()  # conversation.item.added, .done
        started = time.perf_counter()
        ws.send(json.dumps({"type": "response.create"}))
        first = None
        while True:
            event = json.loads(ws.recv())
            if event["type"] == "response.output_audio.delta" and first is None:
                first = time.perf_counter() - started
            if event["type"] == "response.done":
                assert first is not None, event
                return first


def stream_tokens(http: httpx.Client, url: str, tokens: int) -> tuple[float, int]:
    """(seconds for a whole streamed completion, content chunks received)."""
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": QUESTION}], "stream": True,
            "max_tokens": tokens}  # fmt: skip
    started = time.perf_counter()
    count = 0
    with http.stream("POST", f"{url}/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data:") and '"content"' in line:
                count += 1
    return time.perf_counter() - started, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "conversation.json")
    args = parser.parse_args()
    from hibari import Hibari

    tts = Hibari(threads=1)
    tts("Warm up.")
    med = statistics.median
    with tempfile.TemporaryDirectory() as tmp:
        home = build_model(Path(tmp) / "llm")
        upstream = Upstream(home, Path(tmp) / "serve.log").start()
        try:
            env = {"TTS_STUDIO_CHAT_UPSTREAM": upstream.url, "TTS_STUDIO_CHAT_MODEL": MODEL_ID}
            with running_server(Path(tmp), env) as url, httpx.Client(timeout=300) as http:
                realtime_first_audio(url)  # load the engine
                stream_tokens(http, f"{url}/v1", 8)
                llm_first, rt_first, raw_first, raw_loaded, direct, proxied, counts = [], [], [], [], [], [], []
                for _ in range(args.runs):
                    seconds, chunk, loaded = upstream_first_chunk(http, upstream.url, tts)
                    llm_first.append(seconds)
                    raw_loaded.append(loaded)
                    rt_first.append(realtime_first_audio(url))
                    started = time.perf_counter()
                    next(iter(tts.stream(chunk)))
                    raw_first.append(time.perf_counter() - started)
                    d, n = stream_tokens(http, upstream.url, args.tokens)
                    p, m = stream_tokens(http, f"{url}/v1", args.tokens)
                    direct.append(d)
                    proxied.append(p)
                    counts.append(min(n, m))
        finally:
            upstream.stop()
    added = [rt - llm for rt, llm in zip(rt_first, llm_first, strict=True)]
    per_token = [(p - d) / max(n, 1) for p, d, n in zip(proxied, direct, counts, strict=True)]
    report: dict[str, Any] = {
        "runs": args.runs,
        "realtime_first_audio_ms": med(rt_first) * 1e3,
        "upstream_first_chunk_ms": med(llm_first) * 1e3,
        "realtime_added_ms": med(added) * 1e3,
        "raw_engine_first_piece_ms": med(raw_first) * 1e3,
        "raw_engine_first_piece_while_llm_writes_ms": med(raw_loaded) * 1e3,
        "realtime_added_over_raw_engine_ms": (med(added) - med(raw_first)) * 1e3,
        "realtime_added_over_raw_engine_same_load_ms": (med(added) - med(raw_loaded)) * 1e3,
        "proxy_direct_stream_ms": med(direct) * 1e3,
        "proxy_proxied_stream_ms": med(proxied) * 1e3,
        "proxy_tokens": med(counts),
        "proxy_overhead_per_token_ms": med(per_token) * 1e3,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(
        f"Realtime: first audio {report['realtime_first_audio_ms']:.1f} ms, upstream's first chunk "
        f"{report['upstream_first_chunk_ms']:.1f} ms -> added {report['realtime_added_ms']:.1f} ms; raw engine "
        f"first piece {report['raw_engine_first_piece_ms']:.1f} ms (added - raw = "
        f"{report['realtime_added_over_raw_engine_ms']:+.1f} ms); raw engine first piece while the LLM writes "
        f"{report['raw_engine_first_piece_while_llm_writes_ms']:.1f} ms (added - that = "
        f"{report['realtime_added_over_raw_engine_same_load_ms']:+.1f} ms; target <= +30 ms)"
    )
    print(f"Chat proxy: {report['proxy_tokens']:.0f} tokens direct {report['proxy_direct_stream_ms']:.0f} ms, "
          f"proxied {report['proxy_proxied_stream_ms']:.0f} ms -> {report['proxy_overhead_per_token_ms']:.3f} ms "
          f"per token (target <= 2 ms); medians of {args.runs}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
