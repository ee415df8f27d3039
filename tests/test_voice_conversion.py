"""Voice conversion on the default install (no chatterbox-tts): both routes, the MCP tool and the Convert tab
answer with what to install for valid input, and with 4xx envelopes for bad input. The conversion itself
runs on the real engine in tests/engines/test_voice_conversion_engine.py."""

from __future__ import annotations

import importlib.util
import io
import itertools
from collections.abc import Callable
from typing import Any

import anyio
import numpy as np
import pytest
import soundfile as sf
from mcp import Client

from tests.conftest import InProcess, LiveServer
from tests.test_errors import assert_envelope
from tts_studio.api.routes.voice_conversion import elevenlabs_format
from tts_studio.engines.chatterbox_vc_engine import split_at_silences

NOT_INSTALLED = pytest.mark.skipif(
    importlib.util.find_spec("chatterbox") is not None, reason="the default install has no chatterbox-tts"
)
INSTALL = "tts-studio[chatterbox]"


def clip(seconds: float = 2.0, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 200 * t)).astype("float32"), rate, format="WAV")
    return buf.getvalue()


def convert(studio: InProcess, voice: str = "alloy", audio: bytes | None = None, **fields: str) -> Any:
    files = {"audio": ("clip.wav", clip() if audio is None else audio, "audio/wav")}
    return studio.post("/v1/audio/voice-conversion", data={"voice": voice, **fields}, files=files)


def speech_to_speech(studio: InProcess, voice: str = "bundled_heart", audio: bytes | None = None, **query: str) -> Any:
    files = {"audio": ("clip.wav", clip() if audio is None else audio, "audio/wav")}
    return studio.post(f"/v1/speech-to-speech/{voice}", params=query, files=files, data={"model_id": "eleven_sts_v2"})


ROUTES: dict[str, Callable[..., Any]] = {"voice-conversion": convert, "speech-to-speech": speech_to_speech}


@NOT_INSTALLED
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("voice", ["alloy", "bundled_heart", "Heart"])  # OpenAI name, library id, library name
def test_valid_input_says_what_to_install(app_client: InProcess, route: str, voice: str) -> None:
    response = ROUTES[route](app_client, voice)
    assert response.status_code == 503
    message = assert_envelope(response.json(), code="engine_not_installed")["message"]
    assert INSTALL in message and "Models tab" in message


@pytest.mark.parametrize("route", ROUTES)
def test_a_text_file_is_not_audio(app_client: InProcess, route: str) -> None:
    response = ROUTES[route](app_client, audio=b"Dear diary, today I sent a text file as audio.\n" * 20)
    assert 400 <= response.status_code < 500
    assert assert_envelope(response.json(), code="invalid_audio", param="audio")


@pytest.mark.parametrize("route", ROUTES)
def test_an_unknown_voice_is_a_400(app_client: InProcess, route: str) -> None:
    response = ROUTES[route](app_client, "no-such-voice")
    assert response.status_code == 400
    assert "no-such-voice" in assert_envelope(response.json(), param="voice")["message"]


def test_missing_fields_and_bad_values(app_client: InProcess) -> None:
    no_audio = app_client.post("/v1/audio/voice-conversion", data={"voice": "alloy"}, files={"x": ("a", b"b")})
    assert no_audio.status_code == 400
    assert_envelope(no_audio.json(), code="missing_required_parameter", param="audio")
    no_voice = app_client.post("/v1/audio/voice-conversion", files={"audio": ("clip.wav", clip())})
    assert no_voice.status_code == 400
    assert_envelope(no_voice.json(), code="missing_required_parameter", param="voice")
    json_body = app_client.post("/v1/audio/voice-conversion", json={"voice": "alloy"})
    assert json_body.status_code == 415
    assert_envelope(json_body.json())
    for fields, param in (
        ({"response_format": "xyz"}, "response_format"),
        ({"steps": "many"}, "steps"),
        ({"model": "tts-1"}, "model"),  # speaks text; does not convert
    ):
        response = convert(app_client, **fields)
        assert response.status_code == 400, fields
        assert_envelope(response.json(), param=param)
    assert speech_to_speech(app_client, output_format="ulaw_8000").status_code == 400
    unknown_model = convert(app_client, model="no-such-model")
    assert unknown_model.status_code == 404
    assert_envelope(unknown_model.json(), code="model_not_found")


def test_too_long_is_refused(app_factory: Callable[..., InProcess]) -> None:
    studio = app_factory(voice_conversion_max_seconds=1.5)
    response = convert(studio, audio=clip(2.0))
    assert response.status_code == 400
    assert_envelope(response.json(), code="audio_too_long", param="audio")


def test_a_conversion_model_speaks_no_text(app_client: InProcess) -> None:
    response = app_client.post("/v1/audio/speech", json={"model": "chatterbox-vc", "input": "Hi.", "voice": "alloy"})
    assert response.status_code == 400
    assert "voice-conversion" in assert_envelope(response.json(), code="model_not_supported", param="model")["message"]
    assert "chatterbox-vc" not in {m["id"] for m in app_client.get("/v1/models").json()["data"]}


def test_elevenlabs_output_formats() -> None:
    assert elevenlabs_format(None) == ("mp3", None)
    assert elevenlabs_format("mp3_44100_128") == ("mp3", None)
    assert elevenlabs_format("pcm_16000") == ("pcm", 16000)
    assert elevenlabs_format("wav_44100") == ("wav", 44100)
    assert elevenlabs_format("opus_48000_64") == ("opus", None)
    assert elevenlabs_format("flac") == ("flac", None)


def test_long_sources_are_split_at_silences() -> None:
    rate = 1000
    loud = np.full(rate * 40, 0.5, np.float32)
    quiet = [11.0, 24.0, 33.0]  # seconds where 100 ms of silence sits
    for at in quiet:
        loud[int(at * rate) : int(at * rate) + 100] = 0.0
    bounds = split_at_silences(loud, rate, max_seconds=15.0)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(loud)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))  # contiguous, nothing lost
    assert all(end - start <= 15 * rate for start, end in bounds)
    assert all(any(abs(end / rate - at) < 0.1 for at in quiet) for _, end in bounds[:-1])  # cut in a silence
    assert split_at_silences(loud[: 10 * rate], rate) == [(0, 10 * rate)]


@NOT_INSTALLED
def test_mcp_convert_tool_says_what_to_install(server: LiveServer) -> None:
    import base64

    async def go() -> Any:
        async with Client(f"{server.url}/mcp") as client:
            tools = await client.list_tools()
            result = await client.call_tool(
                "convert", {"audio_base64": base64.b64encode(clip()).decode(), "voice": "nova"}
            )
            return tools, result

    tools, result = anyio.run(go)
    assert "convert" in {t.name for t in tools.tools}
    assert result.is_error and INSTALL in "".join(b.text for b in result.content if b.type == "text")


def test_the_ui_has_a_convert_tab(app_factory: Callable[..., InProcess]) -> None:
    studio = app_factory(enable_ui=True)
    config = studio.get("/ui/config").json()
    ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    assert {"tab-convert", "convert-source", "convert-voice", "convert-btn", "convert-audio"} <= ids
    source = next(c for c in config["components"] if c.get("props", {}).get("elem_id") == "convert-source")
    assert set(source["props"]["sources"]) == {"upload", "microphone"}
    status = next(c for c in config["components"] if c.get("props", {}).get("elem_id") == "convert-status")
    if importlib.util.find_spec("chatterbox") is None:
        assert INSTALL in status["props"]["value"]
