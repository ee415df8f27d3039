"""The studio on Ray Serve against the single process, on this machine, in one run:

    unshare -n sh -c 'ip link set lo up && .venv-engines/bin/python bench/ray_bench.py [--runs 5] [--clients 4]'

(a) time to first byte of a streamed pcm answer (3 sentences, warm), single process vs through Serve's proxy;
(b) aggregate audio-seconds per wall-second of --clients concurrent 12-sentence streams;
both with one and with two replicas of the embedded engine (a two-node cluster on loopback, the engine on the
second node), requests to the two servers alternating, medians of --runs;
(c) the engine's only replica killed under 8 streams: how the streams ended and how long until a request
succeeded again. Ray needs its own network namespace here (its servers listen on every interface)."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from _server import running_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.ray.cluster: the loopback cluster

from tests.ray.cluster import GPU_STANDIN, free_port, isolated_network, start_cluster

KEY = "sk-bench"
THREE = (
    "The museum opens at nine in the morning. Visitors can see paintings from four centuries. "
    "Guided tours leave every hour from the main hall."
)
TWELVE = " ".join(f"Sentence {n} tells a little more of the story of the quiet valley." for n in range(1, 13))


def first_byte(url: str, headers: dict[str, str], text: str) -> tuple[float, float]:
    """(seconds to the first byte, seconds of audio) of one pcm stream."""
    started = time.perf_counter()
    ttfb, size = 0.0, 0
    body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "pcm"}
    with httpx.stream("POST", f"{url}/v1/audio/speech", json=body, headers=headers, timeout=300) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            if not size:
                ttfb = time.perf_counter() - started
            size += len(chunk)
    return ttfb, size / 48000


def throughput(url: str, headers: dict[str, str], clients: int) -> float:
    """Audio-seconds per wall-second of `clients` concurrent streams."""
    seconds: list[float] = []
    threads = [
        threading.Thread(target=lambda: seconds.append(first_byte(url, headers, TWELVE)[1])) for _ in range(clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(seconds) / (time.perf_counter() - started)


def compare(local: str, ray_url: str, runs: int, clients: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {KEY}"}
    for url in (local, ray_url):  # warm: engines loaded, connections made
        first_byte(url, headers, THREE)
    ttfb: dict[str, list[float]] = {"single": [], "ray": []}
    rate: dict[str, list[float]] = {"single": [], "ray": []}
    for _ in range(runs):
        for name, url in (("single", local), ("ray", ray_url)):
            ttfb[name].append(first_byte(url, headers, THREE)[0])
            rate[name].append(throughput(url, headers, clients))
    med = {f"ttfb_{k}_ms": round(1000 * statistics.median(v), 1) for k, v in ttfb.items()}
    med |= {f"audio_s_per_wall_s_{k}": round(statistics.median(v), 1) for k, v in rate.items()}
    med["added_ttfb_ms"] = round(med["ttfb_ray_ms"] - med["ttfb_single_ms"], 1)
    return med


def kill_under_load(studio: str) -> dict[str, Any]:
    """Kill the engine's replica while 8 streams run; how they ended, and the seconds until one succeeds."""
    import ray

    headers = {"Authorization": f"Bearer {KEY}"}
    outcomes: list[str] = []
    started = threading.Barrier(9)

    def stream() -> None:
        body = {"model": "tts-1", "voice": "alloy", "input": TWELVE, "response_format": "pcm"}
        try:
            with httpx.stream("POST", f"{studio}/v1/audio/speech", json=body, headers=headers, timeout=300) as r:
                size = 0
                for chunk in r.iter_raw():
                    if not size:
                        started.wait(120)
                    size += len(chunk)
                outcomes.append(f"{r.status_code} {size / 48000:.1f} s")
        except (httpx.HTTPError, threading.BrokenBarrierError) as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=stream) for _ in range(8)]
    for thread in threads:
        thread.start()
    started.wait(120)
    named = ray.util.list_named_actors(all_namespaces=True)
    for entry in named:
        if "#engine-hibari#" in entry["name"]:
            ray.kill(ray.get_actor(entry["name"], namespace=entry["namespace"]), no_restart=True)
    killed = time.perf_counter()
    for thread in threads:
        thread.join()
    while True:
        try:
            first_byte(studio, headers, "Back again?")
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    return {"streams": sorted(outcomes), "seconds_until_served_again": round(time.perf_counter() - killed, 1)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    if not isolated_network():
        print("run it inside a network namespace with only loopback: unshare -n sh -c 'ip link set lo up && ...'")
        return 2
    results: dict[str, Any] = {"runs": args.runs, "clients": args.clients}
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp), {"TTS_STUDIO_API_KEY": KEY}) as local:
        cluster = start_cluster({"TTS_STUDIO_CACHE_DIR": f"{tmp}/node"})
        try:
            import os

            os.environ.update({k: v for k, v in cluster.env.items() if k.startswith("RAY_")})
            import ray
            from ray import serve

            from tts_studio.cluster.launch import deploy
            from tts_studio.config import Settings

            ray.init(address=cluster.address, log_to_driver=False)
            port = free_port()
            for replicas in (1, 2):
                started = time.perf_counter()
                deploy(
                    Settings(
                        api_key=KEY, port=port, data_dir=Path(tmp) / "ray", cache_dir=Path(tmp) / "ray-cache",
                        enable_ui=False, ray_engines=["hibari"], ray_speech_replicas=1,
                        ray_engine_options={"hibari": {"resources": {GPU_STANDIN: 0.5}, "min_replicas": replicas,
                                                       "max_replicas": replicas, "max_ongoing_requests": 4}},
                    )
                )  # fmt: skip
                deployed = round(time.perf_counter() - started, 1)
                ray_url = f"http://127.0.0.1:{port}"
                measured = compare(local, ray_url, args.runs, args.clients)
                results[f"{replicas}_replica"] = {"deploy_s": deployed, **measured}
                print(json.dumps({f"{replicas}_replica": results[f"{replicas}_replica"]}), flush=True)
            # back to one replica, then kill it under load
            deploy(
                Settings(
                    api_key=KEY, port=port, data_dir=Path(tmp) / "ray", cache_dir=Path(tmp) / "ray-cache",
                    enable_ui=False, ray_engines=["hibari"], ray_speech_replicas=1,
                    ray_engine_options={"hibari": {"resources": {GPU_STANDIN: 0.5}, "max_ongoing_requests": 4}},
                )
            )  # fmt: skip
            results["kill_under_8_streams"] = kill_under_load(f"http://127.0.0.1:{port}")
            serve.shutdown()
            ray.shutdown()
        finally:
            cluster.stop()
    print(json.dumps(results, indent=2))
    out = Path(__file__).parent / "results" / "ray_bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
