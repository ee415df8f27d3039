"""Projects over the API on the embedded engine: a chaptered two-speaker script with a pause and a dictionary
term renders to a verified m4b with chapter markers, captions and a timing sidecar; a pause inside a line is
silence inside its one take; failing takes are redone then flagged; a restart resumes; cancel; edits re-render
only what changed; bad input; dialogue."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest

from tests.conftest import LiveServer, decode, hear, make_settings, start_server, words
from tests.doubles import wait_for
from tests.project_doubles import GatedTranscriber, Hooks, hooked_registry
from tests.test_errors import assert_envelope
from tts_studio.projects.script import parse
from tts_studio.projects.store import Project

SCRIPT = """# The Beginning
The morning was quiet in the valley.
Alice: Good morning, Bob. [pause 1.2s] Did you see the Zorblax?
Bob: I saw it by the river.
# The Middle
The river ran past the old mill.
Alice: The mill is older than the town.
# The End
Bob: That was a fine day.
"""
VOICES = {"Narrator": "alloy", "Alice": "nova", "Bob": "echo"}
DICTIONARY = [{"term": "zorblax", "say": "yellow banana"}]


def _create(url: str, **overrides: Any) -> dict[str, Any]:
    body = {"name": "Three chapters", "script": SCRIPT, "voices": VOICES, "dictionary": DICTIONARY, **overrides}
    response = httpx.post(f"{url}/v1/projects", json=body, timeout=30)
    assert response.status_code == 201, response.text
    project: dict[str, Any] = response.json()
    return project


def _render(url: str, project_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Start a render and follow its SSE progress to the end; returns the final project."""
    response = httpx.post(f"{url}/v1/projects/{project_id}/render", json=body, timeout=30)
    assert response.status_code == 202, response.text
    statuses = []
    with httpx.stream("GET", f"{url}/v1/projects/{project_id}/events", timeout=300) as events:
        for line in events.iter_lines():
            if line.startswith("data: "):
                statuses.append(json.loads(line[6:])["status"])
    assert statuses[-1] in ("done", "failed", "cancelled"), statuses
    project: dict[str, Any] = httpx.get(f"{url}/v1/projects/{project_id}", timeout=30).json()
    return project


def _lines(project: dict[str, Any]) -> list[dict[str, Any]]:
    return [line for chapter in project["chapters"] for line in chapter["lines"]]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Any:
    live = start_server(make_settings(tmp_path_factory.mktemp("projects")))
    project = _create(live.url)
    done = _render(live.url, project["id"])
    yield live, done
    live.stop()


def _export(live: LiveServer, project_id: str, fmt: str, **params: str) -> httpx.Response:
    response = httpx.get(f"{live.url}/v1/projects/{project_id}/export", params={"format": fmt, **params}, timeout=120)
    assert response.status_code == 200, response.text
    return response


def test_render_verifies_every_line(rendered: Any) -> None:
    _, project = rendered
    assert project["status"] == "done" and project["progress"]["done"] == project["progress"]["total"] == 6
    assert [c["title"] for c in project["chapters"]] == ["The Beginning", "The Middle", "The End"]
    assert {line["speaker"] for line in _lines(project)} == {"Narrator", "Alice", "Bob"}
    for line in _lines(project):
        assert line["status"] == "done" and not line["flagged"] and line["wer"] <= 0.25, line


def test_m4b_chapters_match_titles_and_audio(rendered: Any) -> None:
    live, project = rendered
    data = _export(live, project["id"], "m4b").content
    sidecar = _export(live, project["id"], "json").json()
    with av.open(io.BytesIO(data)) as container:
        chapters = container.chapters()
        duration = container.duration / 1e6
    assert [c["metadata"]["title"] for c in chapters] == ["The Beginning", "The Middle", "The End"]
    starts = [float(c["start"] * c["time_base"]) for c in chapters]
    first_cues = {}
    for cue in sidecar["lines"]:
        first_cues.setdefault(cue["id"].split("-")[0], cue["start"])
    assert starts == pytest.approx([first_cues["c1"], first_cues["c2"], first_cues["c3"]], abs=0.002)
    assert starts[0] == 0.0 and starts == sorted(starts)
    assert duration == pytest.approx(sidecar["duration"], abs=0.2)


def test_captions_are_in_order_and_cover_the_audio(rendered: Any) -> None:
    live, project = rendered
    duration = _export(live, project["id"], "json").json()["duration"]
    for fmt, sep in (("srt", ","), ("vtt", ".")):
        text = _export(live, project["id"], fmt).text
        stamps = re.findall(
            rf"(\d\d):(\d\d):(\d\d){re.escape(sep)}(\d\d\d) --> (\d\d):(\d\d):(\d\d){re.escape(sep)}(\d\d\d)", text
        )
        seconds = [int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000 for stamp in stamps
                   for h, m, s, ms in (stamp[:4], stamp[4:])]  # fmt: skip
        cues = list(zip(seconds[::2], seconds[1::2], strict=True))
        assert len(cues) == 7  # six lines; Alice's first is two cues, one each side of her pause
        assert all(start < end for start, end in cues)
        assert all(cues[i][1] <= cues[i + 1][0] for i in range(len(cues) - 1))
        assert cues[0][0] == 0.0 and duration - cues[-1][1] <= 2.0  # the last chapter's closing gap
    assert text.startswith("WEBVTT") and "<v Alice>Good morning, Bob." in text


def test_the_pause_is_silence_at_its_place(rendered: Any) -> None:
    live, project = rendered
    lines = {cue["id"]: cue for cue in _export(live, project["id"], "json").json()["lines"]}
    line = lines["c1-l2"]  # Alice's line with the pause inside: one line, one take
    assert line["text"] == "Good morning, Bob. Did you see the Zorblax?"
    before, after = line["parts"]
    assert (before["text"], after["text"]) == ("Good morning, Bob.", "Did you see the Zorblax?")
    assert line["start"] == before["start"] < before["end"] < after["start"] < after["end"]
    assert after["end"] == pytest.approx(line["end"], abs=0.002)
    assert after["start"] - before["end"] >= 1.2 - 0.001
    samples, rate = decode(_export(live, project["id"], "wav", loudness="none").content, "wav")
    gap = samples[int(before["end"] * rate) + rate // 20 : int(after["start"] * rate) - rate // 20]
    assert len(gap) >= rate * 1.0 and np.abs(gap).max() < 1e-3 * 32768


def test_whisper_hears_the_dictionary_replacement(rendered: Any, whisper: Any) -> None:
    live, project = rendered
    line = next(line for line in _lines(project) if line["id"] == "c1-l2")
    assert "banana" in line["transcript"].lower()
    audio = httpx.get(f"{live.url}/v1/projects/{project['id']}/lines/c1-l2/audio").content
    samples, rate = decode(audio, "wav")
    assert "banana" in hear(whisper, samples, rate)


def test_loudness_presets(rendered: Any) -> None:
    from tts_studio.projects.export import loudness

    live, project = rendered
    for preset, target in (("audiobook", -20.0), ("podcast", -16.0)):
        samples, _ = decode(_export(live, project["id"], "flac", loudness=preset).content, "flac")
        integrated, peak = loudness((samples / 32768.0).astype(np.float32))
        assert integrated == pytest.approx(target, abs=1.0)
        assert peak <= (-3.0 if preset == "audiobook" else -1.5) + 0.5


@pytest.mark.parametrize("fmt", ["mp3", "opus", "flac"])
def test_audio_exports_decode(rendered: Any, fmt: str) -> None:
    live, project = rendered
    data = _export(live, project["id"], fmt, chapter="2").content
    samples, rate = decode(data, fmt)
    sidecar = _export(live, project["id"], "json", chapter="2").json()
    assert len(samples) / rate == pytest.approx(sidecar["duration"], abs=0.15)
    assert [line["id"] for line in sidecar["lines"]] == ["c2-l1", "c2-l2"]


PAUSED = "# One\nBob: Hello there. [pause 1s] How are you?\n"


def _longest_quiet(samples: np.ndarray, rate: int) -> tuple[float, float]:
    """(start, length) in seconds of the longest run of near-zero samples (below -60 dBFS)."""
    if np.abs(samples).max(initial=0.0) > 1.0:  # s16 values decoded as floats (wav)
        samples = samples / 32768.0
    quiet = np.concatenate([[False], np.abs(samples) < 1e-3, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(quiet))
    starts, ends = edges[::2], edges[1::2]
    longest = int(np.argmax(ends - starts))
    return starts[longest] / rate, (ends[longest] - starts[longest]) / rate


def _take_silence(live: LiveServer, project_id: str, line_id: str) -> tuple[float, float, float]:
    """(where the take's longest silence starts, its length, the take's length), seconds."""
    audio = httpx.get(f"{live.url}/v1/projects/{project_id}/lines/{line_id}/audio", timeout=30)
    assert audio.status_code == 200, audio.text
    samples, rate = decode(audio.content, "wav")
    return *_longest_quiet(samples, rate), len(samples) / rate


def test_a_pause_inside_a_line_is_silence_inside_its_one_take(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    hooks = Hooks()
    live = live_server(hooked_registry(hooks))
    project = _create(live.url, model="hooked", script=PAUSED, dictionary=[])
    (line,) = _lines(project)  # one line, as the author wrote it
    assert (line["id"], line["speaker"], line["text"]) == ("c1-l1", "Bob", "Hello there. [pause 1s] How are you?")
    (line,) = _lines(_render(live.url, project["id"]))
    assert line["status"] == "done" and line["wer"] <= 0.25
    assert "hello there" in words(line["transcript"]) and "how are you" in words(line["transcript"])
    start, silence, length = _take_silence(live, project["id"], "c1-l1")
    assert 1.0 <= silence <= 1.15  # the pause (each part keeps a few quiet milliseconds where it meets it)
    assert start >= 0.4 and length - (start + silence) >= 0.4  # between the two spoken parts
    takes = tmp_path / "data" / "projects" / project["id"] / "takes"
    assert len(list(takes.glob("*.json"))) == len(list(takes.glob("*.wav"))) == 1

    before = len(hooks.spoken)
    again = _render(live.url, project["id"], {"lines": ["c1-l1"]})  # regenerate: the whole line again
    assert set(hooks.spoken[before:]) == {"Hello there.", "How are you?"}
    assert [line["status"] for line in _lines(again)] == ["done"]
    assert len(list(takes.glob("*.json"))) == len(list(takes.glob("*.wav"))) == 1
    start, silence, length = _take_silence(live, project["id"], "c1-l1")
    assert 1.0 <= silence <= 1.15 and start >= 0.4 and length - (start + silence) >= 0.4

    sidecar = _export(live, project["id"], "json").json()
    (cue,) = sidecar["lines"]
    assert cue["text"] == "Hello there. How are you?"
    assert [part["text"] for part in cue["parts"]] == ["Hello there.", "How are you?"]
    first, second = cue["parts"]
    assert second["start"] - first["end"] >= 1.0 - 0.001
    assert all(first["start"] <= w["start"] < first["end"] for w in cue["words"] if "hello" in w["word"].lower())
    assert all(second["start"] <= w["start"] < second["end"] for w in cue["words"] if "you" in w["word"].lower())
    srt = _export(live, project["id"], "srt").text
    assert "Bob: Hello there.\n" in srt and "Bob: How are you?\n" in srt


def test_verification_hears_the_whole_line(live_server: Callable[..., LiveServer]) -> None:
    hooks = Hooks(wrong_text="Completely different words are spoken here.", wrong_when="How are you")
    live = live_server(hooked_registry(hooks), project_max_tries=2)
    project = _create(live.url, model="hooked", script=PAUSED, dictionary=[])
    (line,) = _lines(_render(live.url, project["id"]))
    assert line["flagged"] and line["takes"] == 2  # the words after the pause are wrong: the line fails
    assert "hello there" in words(line["transcript"]) and "different" in words(line["transcript"])


def test_wrong_words_are_regenerated_then_flagged(live_server: Callable[..., LiveServer]) -> None:
    hooks = Hooks(wrong_text="Completely different words are spoken here.", wrong_when="river")
    live = live_server(hooked_registry(hooks), project_max_tries=3)
    project = _create(live.url, model="hooked")
    done = _render(live.url, project["id"])
    flagged = [line for line in _lines(done) if line["flagged"]]
    assert {line["id"] for line in flagged} == {"c1-l3", "c2-l1"}  # the two lines with "river"
    for line in flagged:
        assert line["status"] == "flagged" and line["takes"] == 3 and line["wer"] > 0.25
        assert "different" in line["transcript"].lower() and "Whisper heard" in line["note"]
        assert sum("river" in text for text in hooks.spoken if line["text"][:10] in text) == 3
    assert all(line["status"] == "done" for line in _lines(done) if not line["flagged"])
    approved = httpx.post(f"{live.url}/v1/projects/{project['id']}/lines/c1-l3/approve").json()
    line = next(line for line in _lines(approved) if line["id"] == "c1-l3")
    assert line["status"] == "approved" and not line["flagged"]


def test_restart_resumes_without_redoing_finished_takes(tmp_path: Path) -> None:
    first = Hooks(gate_when="older than the town")  # c2-l2: the fifth line of six
    live = start_server(make_settings(tmp_path), hooked_registry(first))
    try:
        project = _create(live.url, model="hooked")
        httpx.post(f"{live.url}/v1/projects/{project['id']}/render").raise_for_status()
        assert first.entered.wait(120)
        takes = tmp_path / "data" / "projects" / project["id"] / "takes"
        wait_for(lambda: len(list(takes.glob("*.json"))) == 4, timeout=60)  # the four lines before it
    finally:
        stopping = threading.Thread(target=live.stop)
        stopping.start()  # the stop cancels the job; the gated piece ends and nothing more is made
        first.release.set()
        stopping.join(60)
    kept = len(list(takes.glob("*.json")))  # the gated line may have finished before the stop took effect
    assert kept in (4, 5)
    second = Hooks()
    again = start_server(make_settings(tmp_path), hooked_registry(second))
    try:
        with httpx.stream("GET", f"{again.url}/v1/projects/{project['id']}/events", timeout=300) as events:
            statuses = [json.loads(line[6:])["status"] for line in events.iter_lines() if line.startswith("data: ")]
        assert statuses[-1] == "done"
        done = httpx.get(f"{again.url}/v1/projects/{project['id']}").json()
        assert all(line["status"] == "done" for line in _lines(done))
        assert len(set(second.spoken)) == 6 - kept  # only the lines without a take (a retry repeats one)
        assert not any("quiet in the valley" in text or "by the river" in text for text in second.spoken)
    finally:
        again.stop()


def test_cancel_stops_the_render(live_server: Callable[..., LiveServer]) -> None:
    hooks = Hooks(gate_when="ran past the old mill")  # c2-l1
    live = live_server(hooked_registry(hooks))
    project = _create(live.url, model="hooked")
    httpx.post(f"{live.url}/v1/projects/{project['id']}/render").raise_for_status()
    assert hooks.entered.wait(120)
    cancelled = httpx.post(f"{live.url}/v1/projects/{project['id']}/cancel").json()
    hooks.release.set()
    assert cancelled["status"] == "cancelled"
    with httpx.stream("GET", f"{live.url}/v1/projects/{project['id']}/events", timeout=60) as events:
        last = [json.loads(line[6:]) for line in events.iter_lines() if line.startswith("data: ")][-1]
    assert last["status"] == "cancelled" and last["progress"]["done"] < 6
    assert not any("fine day" in text for text in hooks.spoken)  # nothing after the line it stopped in


def test_delete_while_rendering_leaves_nothing_on_disk(live_server: Callable[..., LiveServer], tmp_path: Path) -> None:
    hooks = Hooks(gate_when="ran past the old mill")  # c2-l1: synthesis is held mid-render at this line
    live = live_server(hooked_registry(hooks))
    renderer = live.app.state.services.projects.renderer
    whisper = GatedTranscriber(renderer.transcriber)  # ... and the first take is held mid-verification
    renderer.transcriber = whisper
    project = _create(live.url, model="hooked")
    folder = tmp_path / "data" / "projects" / project["id"]
    httpx.post(f"{live.url}/v1/projects/{project['id']}/render").raise_for_status()
    assert hooks.entered.wait(120) and whisper.entered.wait(120)
    assert folder.is_dir()
    with httpx.stream("GET", f"{live.url}/v1/projects/{project['id']}/events", timeout=120) as events:
        lines = events.iter_lines()
        assert json.loads(next(line for line in lines if line.startswith("data: "))[6:])["status"] == "rendering"
        response = httpx.delete(f"{live.url}/v1/projects/{project['id']}", timeout=30)
        assert response.status_code == 200 and response.json()["deleted"] is True
        assert not folder.exists()
        hooks.release.set()  # the held line and the held take now finish: neither may write into the project
        whisper.release.set()
        last = [json.loads(line[6:]) for line in lines if line.startswith("data: ")][-1]
    assert last == {"type": "project.deleted", "id": project["id"], "status": "deleted"}  # the stream says so
    wait_for(lambda: renderer.job(project["id"]) is None, timeout=120)
    assert not folder.exists()
    assert list(folder.parent.iterdir()) == []  # no trash left behind either
    assert not any("fine day" in text for text in hooks.spoken)  # the render stopped at the held line
    assert httpx.get(f"{live.url}/v1/projects/{project['id']}").status_code == 404
    assert httpx.get(f"{live.url}/v1/projects").json()["data"] == []


def _parked_workers() -> list[str]:
    """The server's worker threads (anyio's pool; the live server runs in this process) now inside studio code."""
    frames = sys._current_frames()
    parked = []
    for thread in threading.enumerate():
        if thread.name.startswith("AnyIO worker") and thread.ident in frames:
            stack = traceback.extract_stack(frames[thread.ident])
            where = [f"{frame.filename}:{frame.name}" for frame in stack if "tts_studio" in frame.filename]
            if where:
                parked.append(where[-1])
    return parked


def test_event_subscribers_wait_without_a_thread_each(live_server: Callable[..., LiveServer]) -> None:
    hooks = Hooks(gate_when="Hello there")
    live = live_server(hooked_registry(hooks))
    project = _create(live.url, model="hooked", script="# One\nHello there, my friend.\n", dictionary=[])
    httpx.post(f"{live.url}/v1/projects/{project['id']}/render").raise_for_status()
    assert hooks.entered.wait(120)  # rendering, and nothing changes until the test says so
    with contextlib.ExitStack() as stack:
        subscribers = []
        for _ in range(12):
            client = stack.enter_context(httpx.Client(timeout=120))
            lines = stack.enter_context(client.stream("GET", f"{live.url}/v1/projects/{project['id']}/events"))
            lines_iter = lines.iter_lines()
            first = json.loads(next(line for line in lines_iter if line.startswith("data: "))[6:])
            assert first["status"] == "rendering"
            subscribers.append(lines_iter)
        assert _parked_workers() == []  # twelve subscribers waiting for news, no worker thread held for them
        hooks.release.set()
        for lines_iter in subscribers:  # every one of them hears the render finish
            last = [json.loads(line[6:]) for line in lines_iter if line.startswith("data: ")][-1]
            assert last["status"] == "done" and last["progress"]["done"] == 1


def test_a_progress_view_costs_no_disk_read_per_line(live_server: Callable[..., LiveServer],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    hooks = Hooks(gate_when="Line 1 of")
    live = live_server(hooked_registry(hooks))
    script = "# One\n" + "".join(f"Line {n} of a long chapter [laugh] here.\n" for n in range(1, 301))
    project = _create(live.url, model="hooked", script=script, dictionary=[])
    httpx.post(f"{live.url}/v1/projects/{project['id']}/render").raise_for_status()
    try:
        assert hooks.entered.wait(120)
        projects = live.app.state.services.projects
        first = projects.view(projects.store.get(project["id"]), full=False)
        calls: Counter[str] = Counter()

        def counted(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
            def call(*args: Any, **kwargs: Any) -> Any:
                calls[name] += 1
                return original(*args, **kwargs)

            return call

        monkeypatch.setattr("tts_studio.projects.store.parse", counted("parse", parse))
        monkeypatch.setattr(Project, "take_meta", counted("take_meta", Project.take_meta))
        monkeypatch.setattr(Project, "spoken", counted("spoken", Project.spoken))
        again = projects.view(projects.store.get(project["id"]), full=False)  # what each progress event costs
        assert calls == Counter()  # no script parse, no take read, no line re-spoken
        assert again == first and again["status"] == "rendering"
        assert again["progress"]["total"] == 300 and len(again["warnings"]) == 300  # still the whole picture
    finally:
        monkeypatch.undo()
        httpx.post(f"{live.url}/v1/projects/{project['id']}/cancel").raise_for_status()
        hooks.release.set()


def test_engine_tags_reach_engines_that_speak_them(live_server: Callable[..., LiveServer]) -> None:
    hooks = Hooks()
    live = live_server(hooked_registry(hooks, tags=("laugh",)))
    script = "# One\nBob: That was funny [laugh] indeed [sigh] friend.\n"
    project = _create(live.url, model="hooked", script=script, dictionary=[])
    assert project["warnings"] == ["c1-l1: [sigh] is not supported by hooked and is removed."]
    _render(live.url, project["id"])
    # hibari reads the tag aloud (a tag engine would laugh), so Whisper may ask for a retry: every try has it
    assert hooks.spoken and set(hooks.spoken) == {"That was funny [laugh] indeed friend."}


def test_editing_a_line_renders_only_that_line(live_server: Callable[..., LiveServer]) -> None:
    hooks = Hooks()
    live = live_server(hooked_registry(hooks))
    project = _create(live.url, model="hooked")
    _render(live.url, project["id"])
    before = len(hooks.spoken)
    edited = SCRIPT.replace("That was a fine day.", "That was a long day.")
    httpx.patch(f"{live.url}/v1/projects/{project['id']}", json={"script": edited}).raise_for_status()
    assert httpx.get(f"{live.url}/v1/projects/{project['id']}").json()["progress"]["done"] == 5
    done = _render(live.url, project["id"])
    assert set(hooks.spoken[before:]) == {"That was a long day."}  # (a retry would repeat the same line)
    assert done["progress"]["done"] == 6


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"script": ""}, 400, "script"),
        ({"script": "# Only a title\n"}, 400, "script"),
        ({"voices": {"Alice": "nobody-at-all"}}, 400, "voices.Alice"),
        ({"model": "no-such-model"}, 404, "model"),
        ({"script": "Wait. [pause 90s] Done."}, 400, "script"),
        ({"name": ""}, 400, None),
        ({"dictionary": [{"term": "", "say": "x"}]}, 400, None),
    ],
)
def test_bad_projects_are_rejected(server: LiveServer, body: dict[str, Any], status: int, param: str | None) -> None:
    request = {"name": "Bad", "script": SCRIPT, "voices": VOICES, **body}
    response = httpx.post(f"{server.url}/v1/projects", json=request)
    assert response.status_code == status, response.text
    assert_envelope(response.json(), param=param)


def test_export_before_render_and_unknown_ids(server: LiveServer) -> None:
    project = _create(server.url)
    base = f"{server.url}/v1/projects/{project['id']}"
    response = httpx.get(f"{base}/export", params={"format": "m4b"})
    assert response.status_code == 409
    assert_envelope(response.json(), "not_rendered")
    for params, param in (({"format": "aiff"}, "format"), ({"format": "srt", "chapter": "9"}, "chapter"),
                          ({"format": "mp3", "loudness": "loud"}, "loudness")):  # fmt: skip
        response = httpx.get(f"{base}/export", params=params)
        assert response.status_code == 400
        assert_envelope(response.json(), param=param)
    missing = (("GET", "/v1/projects/proj_missing"), ("POST", "/v1/projects/proj_missing/render"),
               ("DELETE", "/v1/projects/../../etc"), ("POST", f"/v1/projects/{project['id']}/render"))  # fmt: skip
    for method, path in missing:
        body = {"lines": ["c9-l9"]} if path.endswith("render") and "missing" not in path else None
        response = httpx.request(method, f"{server.url}{path}", json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert_envelope(response.json())
    assert httpx.delete(base).json()["deleted"] is True
    assert httpx.get(base).status_code == 404


def test_dialogue_speaks_every_input_in_one_stream(server: LiveServer, whisper: Any) -> None:
    inputs = [{"text": "Good morning, Alice.", "voice": "echo"}, {"text": "Good morning, Bob.", "voice": "nova"}]
    response = httpx.post(f"{server.url}/v1/audio/dialogue", json={"inputs": inputs, "response_format": "wav"})
    assert response.headers["content-type"] == "audio/wav"
    samples, rate = decode(response.content, "wav")
    heard = hear(whisper, samples, rate)
    assert "alice" in heard and "bob" in heard


def test_dialogue_errors_name_the_input(server: LiveServer) -> None:
    body = {"inputs": [{"text": "Hello.", "voice": "alloy"}, {"text": "   ", "voice": "nova"}]}
    response = httpx.post(f"{server.url}/v1/audio/dialogue", json=body)
    assert response.status_code == 400
    assert_envelope(response.json(), param="inputs[1].input")
    response = httpx.post(f"{server.url}/v1/audio/dialogue", json={"inputs": []})
    assert response.status_code == 400


def test_global_dictionary_on_speech_is_opt_in(live_server: Callable[..., LiveServer], whisper: Any) -> None:
    live = live_server()
    httpx.put(f"{live.url}/v1/audio/dictionary", json={"dictionary": DICTIONARY}).raise_for_status()
    assert httpx.get(f"{live.url}/v1/audio/dictionary").json()["dictionary"][0]["say"] == "yellow banana"
    text = "I like the Zorblax."
    for opt_in in (True, False):
        body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "wav", "dictionary": opt_in}
        samples, rate = decode(httpx.post(f"{live.url}/v1/audio/speech", json=body).content, "wav")
        assert ("banana" in hear(whisper, samples, rate)) is opt_in
