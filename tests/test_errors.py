"""Every failure is the OpenAI error envelope with the right status, through the SDK where it can."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import openai
import pytest
from openai import OpenAI

from tests.conftest import InProcess, wait_until_idle
from tts_studio.config import Settings
from tts_studio.engines.base import AudioChunk, EngineInfo, SynthesisRequest, TTSEngine
from tts_studio.engines.registry import EngineSpec, default_registry


def assert_envelope(body: Any, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in error["message"]
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    return dict(error)


def speak(client: OpenAI, **overrides: Any) -> Any:
    args: dict[str, Any] = {"model": "tts-1", "voice": "alloy", "input": "Hello."}
    args.update(overrides)
    return client.audio.speech.create(**args)


@pytest.mark.parametrize(
    ("overrides", "param", "code"),
    [
        ({"input": ""}, "input", "empty_string"),
        ({"input": "   \n "}, "input", "empty_string"),
        ({"input": "x" * 4097}, "input", "string_above_max_length"),
        ({"voice": "nobody"}, "voice", "invalid_value"),
        ({"voice": {"id": "voice_missing"}}, "voice", "invalid_value"),
        ({"response_format": "xyz"}, "response_format", "invalid_value"),
        ({"speed": 0.1}, "speed", "invalid_value"),
        ({"speed": 4.5}, "speed", "invalid_value"),
        ({"stream_format": "chunks"}, "stream_format", "invalid_value"),
        ({"instructions": "x" * 4097}, "instructions", "invalid_value"),
        ({"extra_body": {"seed": "abc"}}, "seed", "invalid_value"),
        ({"extra_body": {"seed": -1}}, "seed", "invalid_value"),
    ],
)
def test_bad_speech_requests_are_400(sdk: OpenAI, overrides: dict[str, Any], param: str, code: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        speak(sdk, **overrides)
    assert info.value.status_code == 400
    assert info.value.code == code
    assert info.value.param == param
    assert_envelope(info.value.response.json(), code, param)


def test_input_limit_counts_characters_not_bytes(sdk: OpenAI) -> None:
    assert speak(sdk, input="é" * 4096, response_format="pcm").content  # 8192 bytes of UTF-8


def test_unknown_model_is_404(sdk: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        speak(sdk, model="tts-9")
    assert info.value.code == "model_not_found"
    assert_envelope(info.value.response.json(), "model_not_found", "model")


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b"", "invalid_json"),
        (b'{"input": "hi", "voice": "alloy"}', "missing_required_parameter"),
        (b'{"model": "tts-1", "voice": "alloy"}', "missing_required_parameter"),
        (b'{"model": "tts-1", "input": "hi"}', "missing_required_parameter"),
        (b'{"model": "tts-1", "input": 5, "voice": "alloy"}', "invalid_type"),
        (b'{"model": "tts-1", "input": "hi", "voice": "alloy", "speed": "fast"}', "invalid_value"),
    ],
)
def test_malformed_bodies_are_400_not_422(app_client: InProcess, content: bytes, code: str) -> None:
    response = app_client.post("/v1/audio/speech", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert_envelope(response.json(), code)


def test_non_json_body_is_415(app_client: InProcess) -> None:
    response = app_client.post("/v1/audio/speech", data={"model": "tts-1"})
    assert response.status_code == 415
    assert_envelope(response.json(), "unsupported_media_type")


def test_oversized_body_is_413(app_factory: Callable[..., InProcess]) -> None:
    studio = app_factory(max_body_bytes=2048)
    with pytest.raises(openai.APIStatusError) as info:
        speak(studio.sdk(), input="word " * 800)
    assert info.value.status_code == 413
    assert_envelope(info.value.response.json(), "request_too_large")


def test_custom_input_limit(app_factory: Callable[..., InProcess]) -> None:
    client = app_factory(max_input_chars=10).sdk()
    with pytest.raises(openai.BadRequestError) as info:
        speak(client, input="eleven char")
    assert info.value.code == "string_above_max_length"


def test_unknown_route_and_method_are_enveloped(app_client: InProcess) -> None:
    missing = app_client.get("/v1/nothing")
    assert missing.status_code == 404
    assert_envelope(missing.json(), "not_found")
    wrong = app_client.get("/v1/audio/speech")
    assert wrong.status_code == 405
    assert_envelope(wrong.json())


def test_api_key_required_when_configured(app_factory: Callable[..., InProcess]) -> None:
    studio = app_factory(api_key="s3cret")
    with pytest.raises(openai.AuthenticationError) as info:
        speak(studio.sdk(api_key="wrong"))
    assert info.value.status_code == 401
    assert_envelope(info.value.response.json(), "invalid_api_key")
    bare = studio.get("/v1/models")
    assert bare.status_code == 401
    assert_envelope(bare.json(), "invalid_api_key")
    assert speak(studio.sdk(api_key="s3cret"), response_format="wav").content[:4] == b"RIFF"
    assert studio.sdk(api_key="s3cret").models.list().data
    assert studio.get("/health").status_code == 200  # health stays public


def test_without_api_key_any_token_is_accepted(app_client: InProcess) -> None:
    assert app_client.sdk(api_key="anything-at-all").models.list().data


def test_too_many_requests_is_429_with_retry_after(app_factory: Callable[..., InProcess]) -> None:
    studio = app_factory(max_active_requests=1)
    long_text = "A sentence that takes a little while to say out loud. " * 70
    with studio.stream(
        "POST",
        "/v1/audio/speech",
        json={
            "model": "tts-1",
            "voice": "alloy",
            "input": long_text,
            "response_format": "pcm",
            "speed": 0.25,
        },
    ) as busy:
        reading = busy.iter_bytes()  # keep a reference: a dropped iterator closes the response
        next(reading)  # the stream holds the only slot while it is being read
        with pytest.raises(openai.RateLimitError) as info:
            speak(studio.sdk())
        assert info.value.response.headers["retry-after"] == "1"
        assert_envelope(info.value.response.json(), "rate_limit_exceeded")
    wait_until_idle(studio)
    assert speak(studio.sdk(), response_format="wav").content  # slot released


class _BrokenEngine:
    info = EngineInfo(
        id="broken", name="Broken", description="fails mid-synthesis", sample_rate=24000, voices=("heart",)
    )

    def load(self, device: str) -> None:
        pass

    def unload(self) -> None:
        pass

    def stream(self, request: SynthesisRequest) -> Iterator[AudioChunk]:
        if request.text.startswith("Fine"):
            yield AudioChunk(np.zeros(24000, np.float32), 24000)
            return
        raise RuntimeError("secret internal detail")


def _missing_package(settings: Settings) -> TTSEngine:
    import tts_studio_no_such_engine  # type: ignore[import-not-found]  # noqa: F401

    raise AssertionError("unreachable")


def _registry() -> dict[str, EngineSpec]:
    registry = default_registry()
    registry["broken"] = EngineSpec(_BrokenEngine.info, lambda s: _BrokenEngine())
    missing_info = EngineInfo(
        id="missing", name="Missing", description="not installed", sample_rate=24000, voices=("heart",)
    )
    registry["missing"] = EngineSpec(missing_info, _missing_package, "pip install tts-studio[missing]")
    return registry


def test_engine_crash_is_500_without_details(app_factory: Callable[..., InProcess]) -> None:
    client = app_factory(registry=_registry()).sdk()
    with pytest.raises(openai.InternalServerError) as info:
        speak(client, model="broken")
    error = assert_envelope(info.value.response.json(), "internal_error")
    assert "secret" not in error["message"]


def test_engine_crash_mid_sse_is_an_error_event(app_factory: Callable[..., InProcess]) -> None:
    studio = app_factory(registry=_registry())
    response = studio.post(
        "/v1/audio/speech", json={"model": "broken", "voice": "heart", "input": "Hi.", "stream_format": "sse"}
    )
    assert response.status_code == 500  # the first event failed, so the status still says so
    assert_envelope(response.json(), "internal_error")


def test_engine_crash_after_first_event_is_an_sse_error_event(app_factory: Callable[..., InProcess]) -> None:
    studio = app_factory(registry=_registry())
    response = studio.post(
        "/v1/audio/speech",
        json={
            "model": "broken",
            "voice": "heart",
            "input": "Fine first sentence. Then it breaks.",
            "stream_format": "sse",
            "response_format": "pcm",
        },
    )
    assert response.status_code == 200
    events = [json.loads(f.removeprefix("data: ")) for f in response.text.split("\n\n") if f]
    assert events[0]["type"] == "speech.audio.delta"
    error = assert_envelope(events[-1], "internal_error")
    assert "secret" not in error["message"]
    assert wait_until_idle(studio)["engines"]["broken"]["in_use"] == 0


def test_engine_not_installed_is_503_with_install_hint(app_factory: Callable[..., InProcess]) -> None:
    studio = app_factory(registry=_registry())
    with pytest.raises(openai.InternalServerError) as info:
        speak(studio.sdk(), model="missing")
    assert info.value.status_code == 503
    error = assert_envelope(info.value.response.json(), "engine_unavailable")
    assert "pip install tts-studio[missing]" in error["message"]
    health = studio.get("/health").json()
    assert health["engines"]["missing"]["state"] == "error"
    assert health["engines"]["hibari"]["state"] in {"loaded", "unloaded"}


def test_cors_preflight_allows_sdk_headers(app_client: InProcess) -> None:
    response = app_client.options(
        "/v1/audio/speech",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": ("authorization,content-type,x-stainless-os,x-stainless-retry-count"),
        },
    )
    assert response.status_code == 200
    allowed = response.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "content-type", "x-stainless-os", "x-stainless-retry-count"):
        assert header in allowed
    assert "POST" in response.headers["access-control-allow-methods"]
    simple = app_client.get("/v1/models", headers={"Origin": "http://localhost:3000"})
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()
    assert simple.headers["x-request-id"]


def test_foreign_origin_gets_no_cors_and_no_answer(app_client: InProcess) -> None:
    response = app_client.get("/v1/models", headers={"Origin": "http://evil.example"})
    assert response.status_code == 403 and "access-control-allow-origin" not in response.headers
    assert_envelope(response.json(), "origin_not_allowed")
