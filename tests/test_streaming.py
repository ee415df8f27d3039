"""Client disconnects stop generation and release the lease; mid-stream failures are reported."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.conftest import LiveServer, wait_until_idle

LONG = "A sentence that is long enough to be its own chunk of the story being read. " * 50


def test_disconnect_stops_generation_and_releases(live_server: Callable[..., LiveServer]) -> None:
    """On the real embedded engine: the server stops a long stream whose client left and frees the engine
    (the engine double in test_scheduling.py shows it stops within one piece)."""
    live = live_server()
    with (
        httpx.Client(timeout=60) as http,
        http.stream(
            "POST",
            f"{live.base_url}/audio/speech",
            json={"model": "tts-1", "voice": "alloy", "input": LONG, "response_format": "pcm", "speed": 0.5},
        ) as response,
    ):
        assert response.status_code == 200
        next(response.iter_raw())
    health = wait_until_idle(live)
    assert health["active_requests"] == 0
    assert health["engines"]["hibari"]["in_use"] == 0
