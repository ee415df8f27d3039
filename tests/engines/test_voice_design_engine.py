"""A voice designed with the real VoxCPM2 (random-weight checkpoint), kept, then spoken by Chatterbox through
the official OpenAI SDK: the designed candidate's audio became the clone reference."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path

import httpx
import soundfile as sf

from tests.conftest import LiveServer, decode
from tests.engines.conftest import CHATTERBOX_TOKENS

SAMPLE = "Hello there. This is the voice I described, reading a short sentence."


def test_designed_voice_is_kept_and_spoken_by_another_engine(
    live_server: Callable[..., LiveServer], checkpoints: dict[str, Path]
) -> None:
    live = live_server(engine_dirs=checkpoints, allow_downloads=False)
    designed = httpx.post(
        f"{live.base_url}/audio/voices/design",
        json={"instructions": "A calm, deep narrator.", "text": SAMPLE, "n": 2, "seed": 7},
        timeout=300,
    )
    assert designed.status_code == 200, designed.text
    candidates = designed.json()["data"]
    assert [c["seed"] for c in candidates] == [7, 8] and len({c["id"] for c in candidates}) == 2
    for candidate in candidates:
        assert candidate["model"] == "voxcpm2" and candidate["text"] == SAMPLE
        samples, rate = sf.read(io.BytesIO(base64.b64decode(candidate["audio"])))
        assert rate == 24000 and len(samples) / rate == candidate["duration"] > 1.0

    saved = httpx.post(
        f"{live.base_url}/audio/voices/design/{candidates[1]['id']}/save", json={"name": "Designed narrator"}
    )
    assert saved.status_code == 200, saved.text
    voice = saved.json()
    assert voice["source"] == "designed" and voice["design"] == "A calm, deep narrator."
    assert voice["transcript"] == SAMPLE and "chatterbox" in voice["engines"]

    audio = (
        live.client(max_retries=0)
        .audio.speech.create(model="chatterbox", voice=voice["id"], input="Hello from a designed voice.")
        .content
    )
    samples, rate = decode(audio, "mp3")
    assert abs(len(samples) / rate - CHATTERBOX_TOKENS / 25) < 0.2
    cache = Path(live.app.state.settings.data_dir) / "voices" / voice["id"] / "cache"
    assert [p.name.split("-")[0] for p in cache.iterdir()] == ["chatterbox"]  # cloned from the designed audio
