"""Client disconnects stop generation and release the lease; mid-stream failures are reported."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import LiveServer, wait_until_idle

LONG = "A sentence that is long enough to be its own chunk of the story being read. " * 50


def test_disconnect_stops_generation_and_releases(
    live_server: Callable[..., LiveServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tts_studio.services.speech")
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
    # the client is gone: the server must notice, stop synthesising and give everything back
    health = wait_until_idle(live)
    assert health["active_requests"] == 0
    assert health["engines"]["hibari"]["in_use"] == 0
    deadline = time.monotonic() + 5
    while not [r for r in caplog.records if r.getMessage().startswith("speech ")] and time.monotonic() < deadline:
        time.sleep(0.05)
    summary = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("speech "))
    done, total = (int(x) for x in summary.split(": ")[1].split(" chunks")[0].split("/"))
    assert total >= 10 and done < total / 2, summary
