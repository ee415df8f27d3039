"""A project render and an engine that fails for a moment (a Ray replica lost and replaced, a device queue
full): the take is tried again after the wait the error asks for, and the render goes on; an error that is not
transient fails the render at once; and one that does not go away fails it after TRANSIENT_TRIES tries.

The engine is the embedded one, failing on cue; the takes are verified by the real Whisper, in-process."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, cast

import pytest

from tests.conftest import InProcess
from tests.doubles import wait_for
from tts_studio.engines.base import AudioChunk, SynthesisRequest
from tts_studio.engines.hibari_engine import HIBARI_INFO, HibariEngine
from tts_studio.engines.registry import EngineSpec, default_registry
from tts_studio.errors import EngineUnavailable, StudioError
from tts_studio.projects.render import TRANSIENT, TRANSIENT_TRIES, ProjectRenderer

SCRIPT = """The morning was quiet in the valley.
The river ran past the old mill.
That was a fine day.
"""
FAILING = "old mill"  # the second line
AFTER = "fine day"  # the third


@dataclass
class Failures:
    """Errors the engine raises, one per request for a line containing `when`, before it speaks normally."""

    when: str
    errors: list[StudioError] = field(default_factory=list)
    spoken: list[str] = field(default_factory=list)  # every request's text, failed or not, in order
    guard: threading.Lock = field(default_factory=threading.Lock)

    def calls(self, text: str) -> int:
        return sum(text in spoken for spoken in self.spoken)


class FlakyHibari(HibariEngine):
    def __init__(self, failures: Failures) -> None:
        super().__init__(1, None)
        self.failures = failures

    def stream(self, request: SynthesisRequest) -> Iterator[AudioChunk]:
        failures = self.failures
        with failures.guard:
            failures.spoken.append(request.text)
            error = failures.errors.pop(0) if failures.when in request.text and failures.errors else None
        if error is not None:
            raise error  # at the first piece, as a lost replica's stream fails
        yield from super().stream(request)


def flaky_registry(failures: Failures) -> dict[str, EngineSpec]:
    registry = default_registry()
    info = replace(HIBARI_INFO, id="flaky", name="hibari failing on cue")
    registry["flaky"] = EngineSpec(info, lambda settings: FlakyHibari(failures), requires=("hibari",))
    return registry


def lost(code: str = "replica_lost") -> EngineUnavailable:
    return EngineUnavailable("The engine's replica went away; retry.", code=code, headers={"Retry-After": "0"})


def render(studio: InProcess) -> dict[str, Any]:
    """Create the project, render it, wait for the render to end; the project as the API shows it then."""
    body = {"name": "Flaky", "script": SCRIPT, "voices": {"Narrator": "alloy"}, "dictionary": [], "model": "flaky"}
    created = studio.post("/v1/projects", json=body)
    assert created.status_code == 201, created.text
    project_id = created.json()["id"]
    started = studio.post(f"/v1/projects/{project_id}/render")
    assert started.status_code == 202, started.text
    renderer: ProjectRenderer = cast(Any, studio.app).state.services.projects.renderer  # app: typed as ASGI
    wait_for(lambda: renderer.job(project_id) is None, timeout=300)  # its final status is recorded by then
    project: dict[str, Any] = studio.get(f"/v1/projects/{project_id}").json()
    return project


def lines(project: dict[str, Any]) -> list[dict[str, Any]]:
    return [line for chapter in project["chapters"] for line in chapter["lines"]]


def test_transient_codes() -> None:
    assert {"replica_lost", "device_busy"} == TRANSIENT and TRANSIENT_TRIES >= 2


@pytest.mark.parametrize("code", ["replica_lost", "device_busy"])
def test_a_transient_failure_is_tried_again(app_factory: Callable[..., InProcess], code: str) -> None:
    failures = Failures(FAILING, [lost(code)])
    project = render(app_factory(flaky_registry(failures)))
    assert project["status"] == "done" and project["error"] is None
    assert project["progress"]["done"] == project["progress"]["total"] == 3
    assert [line["status"] for line in lines(project)] == ["done", "done", "done"]
    assert all(line["takes"] >= 1 for line in lines(project))
    assert failures.errors == []  # the failure happened ...
    assert failures.calls(FAILING) >= 2  # ... and the line was asked for again
    assert failures.calls(AFTER) >= 1


def test_the_last_transient_try_that_speaks_finishes_the_render(app_factory: Callable[..., InProcess]) -> None:
    failures = Failures(FAILING, [lost() for _ in range(TRANSIENT_TRIES - 1)])
    project = render(app_factory(flaky_registry(failures)))
    assert project["status"] == "done"
    assert [line["status"] for line in lines(project)] == ["done", "done", "done"]
    assert failures.errors == [] and failures.calls(FAILING) >= TRANSIENT_TRIES


def test_a_failure_that_is_not_transient_fails_the_render_at_once(app_factory: Callable[..., InProcess]) -> None:
    error = EngineUnavailable("The engine cannot run here.", headers={"Retry-After": "0"})
    assert error.code == "engine_unavailable" and error.code not in TRANSIENT
    failures = Failures(FAILING, [error, lost()])  # a second failure would show a retry
    project = render(app_factory(flaky_registry(failures)))
    assert project["status"] == "failed" and project["error"] == "The engine cannot run here."
    assert failures.calls(FAILING) == 1 and len(failures.errors) == 1  # not asked again
    assert failures.calls(AFTER) == 0  # the render stopped at the failing line
    first, failing, after = lines(project)
    assert first["status"] == "done"  # what was made before the failure is kept
    assert failing["status"] == after["status"] == "pending"


def test_a_transient_failure_that_does_not_go_away_fails_the_render(
    app_factory: Callable[..., InProcess],
) -> None:
    failures = Failures(FAILING, [lost() for _ in range(TRANSIENT_TRIES + 1)])
    project = render(app_factory(flaky_registry(failures)))
    assert project["status"] == "failed" and project["error"] == "The engine's replica went away; retry."
    assert failures.calls(FAILING) == TRANSIENT_TRIES and len(failures.errors) == 1
    assert failures.calls(AFTER) == 0
    assert [line["status"] for line in lines(project)] == ["done", "pending", "pending"]
