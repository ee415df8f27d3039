"""Designed voices on a default install (no VoxCPM): the route says what to install, bad input is a 400, the
route is guarded like every other, candidates are bounded, and a kept candidate becomes a library voice marked
as designed. Designing with the real VoxCPM2 and speaking the result with Chatterbox: tests/engines."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import InProcess, make_settings
from tests.test_errors import assert_envelope
from tts_studio.errors import NotFound
from tts_studio.services.voice_design import Candidate, CandidateStore

DESIGN = "/v1/audio/voices/design"


def test_default_install_says_what_to_install(app_client: InProcess) -> None:
    for response in (
        app_client.post(DESIGN, json={"instructions": "A warm, low voice, speaking slowly.", "n": 2}),
        app_client.post(DESIGN, data={"instructions": "A bright young voice."}),  # a form works too
    ):
        assert response.status_code == 503
        error = assert_envelope(response.json(), "engine_not_installed")
        assert "tts-studio[voxcpm]" in error["message"] and "Models tab" in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"instructions": "   "}, "instructions"),
        ({}, "instructions"),
        ({"instructions": "A calm voice.", "n": 0}, "n"),
        ({"instructions": "A calm voice.", "n": 5}, "n"),
        ({"instructions": "A calm voice.", "n": "two"}, "n"),
        ({"instructions": "A calm voice.", "text": "x" * 601}, "text"),
        ({"instructions": "A calm voice.", "colour": "blue"}, "colour"),
    ],
)
def test_bad_input_is_a_400(app_client: InProcess, body: dict[str, Any], param: str) -> None:
    response = app_client.post(DESIGN, json=body)
    assert response.status_code == 400
    assert_envelope(response.json(), param=param)


def test_unknown_candidate_is_a_404(app_client: InProcess) -> None:
    response = app_client.post(f"{DESIGN}/vdc_nope/save", json={"name": "Nobody"})
    assert response.status_code == 404
    assert_envelope(response.json(), "candidate_not_found", "candidate_id")


def test_guarded_by_key_and_origin(app_factory: Callable[..., InProcess]) -> None:
    studio = app_factory(api_key="sk-design")
    body = {"instructions": "A warm voice."}
    assert studio.post(DESIGN, json=body).status_code == 401
    assert studio.post(f"{DESIGN}/vdc_x/save", json={}).status_code == 401
    key = {"Authorization": "Bearer sk-design"}
    foreign = studio.post(DESIGN, json=body, headers={**key, "Origin": "http://evil.example"})
    assert foreign.status_code == 403
    assert_envelope(foreign.json(), "origin_not_allowed")
    assert studio.post(DESIGN, json=body, headers=key).status_code == 503  # past the guard: what to install


def _candidate(audio: bytes, created_at: float | None = None, number: int = 0) -> Candidate:
    return Candidate(
        id=f"vdc_test{number}",
        audio=audio,
        text="We packed a picnic and walked to the lake.",
        instructions="A cheerful narrator.",
        engine_id="voxcpm2",
        seed=number,
        duration=1.0,
        created_at=time.time() if created_at is None else created_at,
    )


def test_candidates_are_bounded_in_count_and_age() -> None:
    store = CandidateStore(limit=2, max_age=60)
    store.put(_candidate(b"", created_at=time.time() - 120, number=1))  # already too old
    assert len(store) == 0
    for number in (2, 3, 4):
        store.put(_candidate(b"", number=number))
    assert len(store) == 2
    assert store.get("vdc_test4").seed == 4
    with pytest.raises(NotFound):
        store.get("vdc_test2")  # the oldest went first


def test_saved_candidate_becomes_a_designed_library_voice(app_factory: Callable[..., InProcess]) -> None:
    """The candidate's audio is real speech (the embedded engine's): saving needs no design engine."""
    studio = app_factory()
    speech = studio.post(
        "/v1/audio/speech",
        json={"model": "tts-1", "voice": "alloy", "input": "We packed a picnic.", "response_format": "wav"},
    )
    assert speech.status_code == 200
    studio.app.state.services.designs.put(_candidate(speech.content))
    saved = studio.post(f"{DESIGN}/vdc_test0/save", data={"name": "Picnic narrator"})
    assert saved.status_code == 200, saved.text
    voice = saved.json()
    assert voice["name"] == "Picnic narrator" and voice["source"] == "designed"
    assert voice["design"] == "A cheerful narrator."
    assert voice["transcript"] == "We packed a picnic and walked to the lake."
    stored = studio.app.state.voices.library.get(voice["id"])
    assert stored.source == "designed" and stored.design == "A cheerful narrator."
    audio = studio.get(f"/v1/audio/voices/{voice['id']}/audio")
    assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
    again = studio.post(f"{DESIGN}/vdc_test0/save")  # no body: a name from the description
    assert again.status_code == 200 and again.json()["name"].startswith("Designed: A cheerful narrator")


def test_speak_tab_designs_and_keeps_a_voice(tmp_path: Path) -> None:
    """The Speak tab's section calls the same service: without VoxCPM2 generating says what to install; a
    candidate kept there becomes the selected voice."""
    import asyncio

    import gradio as gr

    from tts_studio.engines.registry import default_registry
    from tts_studio.studio import build_services
    from tts_studio.ui import speak
    from tts_studio.ui.context import Studio

    services = build_services(make_settings(tmp_path), default_registry())
    studio = Studio(**{f.name: getattr(services, f.name) for f in fields(services)})
    with gr.Blocks() as demo:
        speak.build(studio)
    events = {fn.api_name: fn.fn for fn in demo.fns.values()}
    *_, status = asyncio.run(events["design_voice"]("A cheerful narrator.", "", 2))
    assert status.startswith("⚠") and "tts-studio[voxcpm]" in status

    wav = io.BytesIO()
    sf.write(wav, 0.3 * np.sin(np.linspace(0, 2400 * np.pi, 48000)), 24000, format="WAV")
    services.designs.put(_candidate(wav.getvalue()))
    selected, message = events["keep_designed_voice"]("vdc_test0", "Kept in the UI")
    kept = services.voices.library.find("Kept in the UI")
    assert kept is not None and kept.source == "designed" and selected["value"] == kept.id
    assert not message.startswith("⚠")
