"""The embedded engine's optional voices, from local copies (the hub is out of reach here, and tests never
download): distinct OpenAI names once present, today's behaviour without them, checksums enforced.

The local copies are the wheel's own model with its text embedding perturbed (a valid model that sounds
different), registered in hibari's voice registry under their own sha256 for the length of a test."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import LiveServer
from tts_studio.engines.hibari_engine import extra_voices, voice_registry
from tts_studio.errors import EngineUnavailable

SAY = {"model": "tts-1", "input": "Good evening, the lights are on.", "response_format": "pcm", "seed": 3}


def _variant(seed: int, out: Path) -> None:
    import onnx
    from hibari.voices import ASSETS
    from onnx import numpy_helper

    model = onnx.load(str(Path(ASSETS) / "hibari.onnx"))
    rng = np.random.default_rng(seed)
    for tensor in model.graph.initializer:
        if tensor.data_type == onnx.TensorProto.FLOAT and "emb" in tensor.name:
            values = numpy_helper.to_array(tensor).copy()
            values *= (1 + 0.15 * rng.standard_normal(values.shape)).astype(np.float32)
            tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
    onnx.save(model, str(out))


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("voice-copies")
    paths = {}
    for seed, name in enumerate(extra_voices(), start=1):
        paths[name] = folder / voice_registry()[name]["file"]
        _variant(seed, paths[name])
    return paths


@pytest.fixture
def registered(copies: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """hibari's registry names the local copies' checksums (restored after the test)."""
    for name, path in copies.items():
        monkeypatch.setitem(voice_registry()[name], "sha256", hashlib.sha256(path.read_bytes()).hexdigest())
    return copies


@pytest.fixture
def mirror(copies: dict[str, Path]) -> Iterator[str]:
    """A local HTTP server in place of the hub (`base_url`)."""
    folder = next(iter(copies.values())).parent

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def _pcm(live: LiveServer, voice: str) -> bytes:
    response = httpx.post(f"{live.base_url}/audio/speech", json={**SAY, "voice": voice}, timeout=60)
    assert response.status_code == 200, response.text
    return response.content


def test_without_the_voices_every_openai_name_is_heart(live_server: Callable[..., LiveServer]) -> None:
    live = live_server()
    assert _pcm(live, "nova") == _pcm(live, "echo") == _pcm(live, "heart")
    listed = {v["id"] for v in httpx.get(f"{live.base_url}/audio/voices").json()["voices"]}
    assert not listed & {"emma", "kore", "fenrir"}


def test_downloaded_voices_give_the_openai_names_distinct_voices(
    live_server: Callable[..., LiveServer], registered: dict[str, Path], mirror: str
) -> None:
    live = live_server()
    fetched = live.app.state.embedded_voices.download(base_url=mirror)
    assert sorted(fetched) == sorted(extra_voices())
    listed = {v["id"]: v for v in httpx.get(f"{live.base_url}/audio/voices").json()["voices"]}
    assert {"emma", "kore", "fenrir"} <= set(listed) and listed["kore"]["engines"] == ["hibari"]
    voices = {name: _pcm(live, name) for name in ("alloy", "nova", "echo", "sage", "fable")}
    assert len(set(voices.values())) == 5  # heart, kore, fenrir, emma, fable: five different voices
    assert voices["nova"] == _pcm(live, "kore")  # nova speaks with kore on the embedded engine
    # the mapping stays the user's to change
    assert httpx.put(f"{live.base_url}/audio/voice_map/nova", json={"voice": "fenrir"}).status_code == 200
    assert _pcm(live, "nova") == _pcm(live, "fenrir")
    # a restart finds them on disk, offline
    again = live_server(data_dir=live.app.state.settings.data_dir, cache_dir=live.app.state.settings.cache_dir)
    assert _pcm(again, "echo") == voices["echo"]


def test_a_corrupted_voice_is_refused_by_its_checksum(
    live_server: Callable[..., LiveServer], registered: dict[str, Path], mirror: str, tmp_path: Path
) -> None:
    live = live_server()
    settings = live.app.state.settings
    # a download whose bytes do not match the registry is not kept
    real = voice_registry()["kore"]["sha256"]
    voice_registry()["kore"]["sha256"] = "0" * 64
    try:
        with pytest.raises(EngineUnavailable, match="sha256") as refused:
            live.app.state.embedded_voices.download(base_url=mirror)
        assert refused.value.code == "download_failed"
    finally:
        voice_registry()["kore"]["sha256"] = real
    assert not (settings.cache_dir / "hibari" / voice_registry()["kore"]["file"]).exists()
    # a file damaged on disk after the download is refused when it loads
    live.app.state.embedded_voices.download(base_url=mirror)
    damaged = settings.cache_dir / "hibari" / voice_registry()["emma"]["file"]
    damaged.write_bytes(damaged.read_bytes()[:-10] + b"0123456789")
    response = httpx.post(f"{live.base_url}/audio/speech", json={**SAY, "voice": "emma"})
    assert response.status_code == 503 and response.json()["error"]["code"] == "voice_damaged"
    assert _pcm(live, "kore")  # the others still speak
