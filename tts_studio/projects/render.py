"""Render jobs: background work on the shared manager (interactive requests go first). One project at a time;
within it, synthesis of the next line overlaps with Whisper verifying the last. Takes that fail
verification are regenerated with a new seed up to `project_max_tries`, then flagged for review. A line with
pauses inside is synthesised part by part and stays one take: the parts with the silences between them. Takes
are stored atomically as they finish, so a restart resumes where it stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tts_studio.audio.decode import pcm16_to_float
from tts_studio.config import Settings
from tts_studio.engines.scheduler import Priority
from tts_studio.errors import NotFound, StudioError
from tts_studio.projects.dictionary import GlobalDictionary
from tts_studio.projects.script import Line, Part, strip_tags
from tts_studio.projects.store import RATE, Project, ProjectStore, RenderStats, Take
from tts_studio.projects.verify import Heard, LineAudio, batch_seconds, failed, hear_batch
from tts_studio.services.job import SpeechJobs
from tts_studio.services.speech import SpeechOrder
from tts_studio.services.transcription import Transcriber

log = logging.getLogger(__name__)
BATCH_SECONDS = 28.0  # takes (and the silences between them) checked in one Whisper call: its window is 30 s
# An engine lost or full for a moment (a Ray replica killed and replaced, a full queue): the take is tried again
# after the wait the error asks for, this many times, before the render fails (its finished takes kept).
TRANSIENT = frozenset({"replica_lost", "device_busy"})
TRANSIENT_TRIES = 4
AHEAD = 12  # lines synthesised ahead of the checks (synthesis is many times faster than Whisper)


@dataclass
class Job:
    """One project's render: what is left, how far it got, and how to stop it."""

    project_id: str
    force: set[str] = field(default_factory=set)  # line ids to render again even if they have a take
    cancel: threading.Event = field(default_factory=threading.Event)
    done: int = 0
    done_at_start: int = 0  # lines that already had takes (for the ETA)
    total: int = 0
    started: float = 0.0
    active: set[str] = field(default_factory=set)  # line ids being made or checked now
    finished: bool = False
    synthesis_seconds: float = 0.0  # busy time of each side (their sum above the wall time: they overlapped)
    verification_seconds: float = 0.0
    verification_calls: int = 0  # Whisper calls (several takes each when they queue up)


@dataclass
class _Work:
    line: Line
    parts: list[Part]  # what the engine is asked to say, with the pauses inside the line
    key: str
    voice: str
    attempt: int = 0
    audio: LineAudio | None = None
    language: str = "en"


class ProjectRenderer:
    """The render queue (one worker thread) and the progress the API, SSE and the UI read."""

    def __init__(
        self,
        store: ProjectStore,
        jobs: SpeechJobs,
        transcriber: Transcriber,
        dictionary: GlobalDictionary,
        settings: Settings,
    ) -> None:
        self.store, self.jobs, self.speech, self.transcriber = store, jobs, jobs.speech, transcriber
        self.dictionary, self.settings = dictionary, settings
        self._queue: deque[Job] = deque()
        self._jobs: dict[str, Job] = {}
        self._changed = threading.Condition()
        self.version = 0
        self._listeners: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()  # see `next_change`
        self._worker: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- queue ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker and resume the projects a stop interrupted (their finished takes are kept)."""
        for project in self.store.all():
            if project.data.status in ("queued", "rendering"):
                self.submit(project.id)
        self._ensure_worker()

    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._run, name="project-render", daemon=True)
            self._worker.start()

    def submit(self, project_id: str, lines: list[str] | None = None) -> Project:
        project = self.store.get(project_id)
        for line_id in lines or []:
            project.line(line_id)  # 404 for an unknown line
        with self._changed:
            job = self._jobs.get(project_id)
            if job is None or job.finished or job.cancel.is_set():
                job = Job(project_id)
                self._jobs[project_id] = job
                self._queue.append(job)
            job.force |= set(lines or [])
            self._bump()
        project = self.store.update(project_id, status="queued" if job.started == 0 else "rendering", error=None)
        self._ensure_worker()
        return project

    def cancel(self, project_id: str) -> Project:
        with self._changed:
            job = self._jobs.get(project_id)
            if job is not None:
                job.cancel.set()
                if job in self._queue:
                    self._queue.remove(job)
                    del self._jobs[project_id]
            self._bump()
        project = self.store.get(project_id)
        if project.data.status in ("queued", "rendering"):
            project = self.store.update(project_id, status="cancelled")
        return project

    def job(self, project_id: str) -> Job | None:
        return self._jobs.get(project_id)

    def _bump(self) -> None:
        """Something changed (called holding `_changed`): wake the threads and the event-loop listeners."""
        self.version += 1
        self._changed.notify_all()
        for loop, event in self._listeners:
            with contextlib.suppress(RuntimeError):  # its loop is closed: the server stopped
                loop.call_soon_threadsafe(event.set)

    async def next_change(self, version: int) -> int:
        """Wait on the event loop, holding no thread, until anything changes after `version`; returns the
        new version. (SSE subscribers wait here, so any number of them costs no worker thread.)"""
        listener = (asyncio.get_running_loop(), asyncio.Event())
        with self._changed:  # held only for moments by the renderer
            if self.version != version:
                return self.version
            self._listeners.add(listener)
        try:
            await listener[1].wait()
        finally:
            with self._changed:
                self._listeners.discard(listener)
        return self.version

    def shutdown(self) -> None:
        self._stopping.set()
        with self._changed:
            for job in self._jobs.values():
                job.cancel.set()
            self._bump()
        if self._worker is not None:
            self._worker.join(timeout=2)  # a step in flight ends within one piece; shutdown stays bounded

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._changed:
                self._changed.wait_for(lambda: bool(self._queue) or self._stopping.is_set())
                if self._stopping.is_set():
                    return
                job = self._queue.popleft()
            status, error = "done", None
            try:
                self._render(job)
                if job.cancel.is_set():
                    status = "cancelled"
            except StudioError as exc:
                status, error = "failed", exc.message
            except Exception:
                log.exception("project %s failed", job.project_id)
                status, error = "failed", "Rendering failed; see the server log."
            with self._changed:
                job.finished = True  # a submit from now on starts a new job
            if self._stopping.is_set():
                return  # interrupted by shutdown: stays "rendering", resumed at the next start
            self._record(job, status, error)
            with self._changed:  # only now: whoever wakes up reads the final status
                if self._jobs.get(job.project_id) is job:
                    del self._jobs[job.project_id]
                self._bump()

    def _record(self, job: Job, status: str, error: str | None) -> None:
        stats = RenderStats(
            wall_seconds=round(time.monotonic() - job.started, 2) if job.started else 0.0,
            synthesis_seconds=round(job.synthesis_seconds, 2),
            verification_seconds=round(job.verification_seconds, 2),
            verification_calls=job.verification_calls,
            lines_rendered=job.done - job.done_at_start,
        )
        try:
            if status == "cancelled" and self.store.get(job.project_id).data.status == "cancelled":
                self.store.update(job.project_id, last_render=stats)
            else:
                self.store.update(job.project_id, status=status, error=error, last_render=stats)
        except StudioError:
            pass  # deleted meanwhile

    # -- one project ------------------------------------------------------------------------------------
    def spoken_lines(self, project: Project) -> list[tuple[Line, list[Part], str]]:
        """(line, what the engine is asked to say part by part, its take key) for every line as the project
        stands: dictionaries applied, tags the engine cannot speak removed."""
        engine_id, _ = self.speech.resolve_model(project.data.model)
        keep = self.speech.manager.info(engine_id).tags
        global_entries = self.dictionary.entries()
        spoken = [(line, project.spoken(line, global_entries, keep)) for line in project.lines()]
        return [(line, text, project.take_key(line, text)) for line, text in spoken]

    def work_list(self, project: Project, force: set[str] | None = None) -> tuple[list[_Work], int]:
        """(lines still to render, lines in all)."""
        todo, lines = [], self.spoken_lines(project)
        for line, spoken, key in lines:
            if line.id in (force or set()):
                project.drop_take(key)
            elif project.meta_path(key).exists():
                continue
            todo.append(_Work(line, spoken, key, project.voice_for(line.speaker)))
        return todo, len(lines)

    def _render(self, job: Job) -> None:
        project = self.store.get(job.project_id)
        todo, total = self.work_list(project, job.force)
        job.total, job.done, job.started = total, total - len(todo), time.monotonic()
        job.done_at_start = job.done
        self.store.update(job.project_id, status="rendering", error=None)
        with self._changed:
            self._bump()
        pending: deque[_Work] = deque(todo)
        checked: queue.Queue[_Work | None] = queue.Queue(maxsize=AHEAD)
        retry: deque[_Work] = deque()
        settled = threading.Condition()  # the verifier took a decision (kept a take or asked for a retry)
        verifier = threading.Thread(
            target=self._verify_loop,
            args=(project, job, checked, retry, settled),
            daemon=True,
            name=f"verify-{job.project_id}",
        )
        verifier.start()
        try:
            while not job.cancel.is_set():
                if not pending:  # what is being checked may come back for another try
                    with settled:
                        settled.wait_for(lambda: bool(retry) or checked.unfinished_tasks == 0 or job.cancel.is_set())
                work = retry.popleft() if retry else (pending.popleft() if pending else None)
                if work is None:
                    break
                with self._changed:
                    job.active.add(work.line.id)
                    self._bump()
                began = time.monotonic()
                work.audio = self._synthesize(project, work, job)
                job.synthesis_seconds += time.monotonic() - began
                if work.audio is None:
                    break
                checked.put(work)
        finally:
            checked.put(None)
            verifier.join()

    def _synthesize(self, project: Project, work: _Work, job: Job) -> LineAudio | None:
        """The line's audio (None once cancelled); tried again after a transient engine error."""
        for attempt in range(TRANSIENT_TRIES):
            try:
                return self._synthesize_once(project, work, job)
            except StudioError as exc:
                if exc.code not in TRANSIENT or attempt == TRANSIENT_TRIES - 1:
                    raise
                wait = float(exc.headers.get("Retry-After", "5"))
                log.warning("project %s: %s; trying the take again in %.0f s", job.project_id, exc.message, wait)
                if job.cancel.wait(wait) or self._stopping.is_set():
                    return None
        return None

    def _synthesize_once(self, project: Project, work: _Work, job: Job) -> LineAudio | None:
        """The line's audio, part by part (None once cancelled)."""
        extra: dict[str, Any] = {}
        if work.attempt:
            extra["seed"] = (int(work.key[:8], 16) + work.attempt) % 2**32
        pieces = []
        for part in work.parts:
            order = SpeechOrder(model=project.data.model, input=part.text, voice=work.voice, extra=extra)
            plan = self.speech.plan(order)
            work.language = plan.language
            data = []
            with self.jobs.admit(Priority.BACKGROUND) as speech:  # the one speech job, behind interactive work
                speech.start([plan], "pcm", sample_rate=RATE)
                for piece in speech:
                    if job.cancel.is_set():
                        return None  # closing the job stops synthesis within one piece
                    data.append(piece)
            pieces.append(pcm16_to_float(b"".join(data)))
        return LineAudio(pieces, [part.pause_after for part in work.parts])

    def _verify_loop(
        self,
        project: Project,
        job: Job,
        checked: queue.Queue[_Work | None],
        retry: deque[_Work],
        settled: threading.Condition,
    ) -> None:
        """Check takes until the None that ends the job (cancelled: skip them, but keep draining). Takes
        waiting together are checked together, up to one Whisper window (it pads every call to 30 s)."""
        ended, carry = False, None
        while not ended:
            batch: list[_Work] = []
            item: _Work | None
            while True:
                if carry is not None:
                    item, carry = carry, None
                elif not batch:
                    item = checked.get()
                else:
                    try:
                        item = checked.get_nowait()
                    except queue.Empty:
                        break
                if item is None:
                    ended = True
                    break
                lengths = [len(w.audio.heard) for w in [*batch, item] if w.audio is not None]
                if batch and batch_seconds(lengths) > BATCH_SECONDS:
                    carry = item  # it opens the next batch: one call stays within one Whisper window
                    break
                batch.append(item)
            try:
                if batch and not job.cancel.is_set():
                    began = time.monotonic()
                    takes = self._check(batch)
                    job.verification_seconds += time.monotonic() - began
                    job.verification_calls += 1
                    self._settle(project, job, batch, takes, retry)
            finally:
                with settled:
                    for _ in range(len(batch) + (1 if ended else 0)):
                        checked.task_done()
                    settled.notify_all()

    def _settle(
        self, project: Project, job: Job, batch: list[_Work], takes: list[Take | None], retry: deque[_Work]
    ) -> None:
        for work, take in zip(batch, takes, strict=True):
            if take is None:
                work.attempt += 1
                retry.append(work)
                continue
            try:
                self.store.save_take(project, take)
            except NotFound:  # the project was deleted meanwhile: nothing of it may be written again
                job.cancel.set()
                return
            with self._changed:
                job.done += 1
                job.active.discard(work.line.id)
                self._bump()

    def _check(self, batch: list[_Work]) -> list[Take | None]:
        """For each take: the take to keep, or None to try again with a new seed."""
        # the words of the whole line (a tag is a sound, not words to hear)
        expected = {id(w): " ".join(strip_tags(part.text) for part in w.parts) for w in batch}
        heard: dict[int, Heard] = {}
        # one Whisper call per language: tiny.en for English, the multilingual model (when downloaded) for others
        for language in dict.fromkeys(w.language for w in batch if self.transcriber.can_transcribe(w.language)):
            group = [w for w in batch if w.language == language and w.audio is not None]
            takes_heard = [(w.audio.heard, expected[id(w)]) for w in group if w.audio is not None]
            results = hear_batch(self.transcriber, takes_heard, language)
            heard.update({id(w): result for w, result in zip(group, results, strict=True)})
        takes: list[Take | None] = []
        for work in batch:
            assert work.audio is not None
            tries = work.attempt + 1
            if id(work) not in heard:
                samples, _, parts = work.audio.take([])
                note = (
                    f"Not verified: Whisper cannot transcribe the voice's language '{work.language}' here (besides "
                    "English it needs the multilingual model: `tts-studio download whisper` or the Models tab)."
                )
                takes.append(Take(work.key, samples, "", None, tries, False, [], note=note, parts=parts))
                continue
            result = heard[id(work)]
            bad = failed(expected[id(work)], result.wer, self.settings.project_wer_threshold, work.language)
            if bad and tries < self.settings.project_max_tries:
                takes.append(None)
                continue
            samples, words, parts = work.audio.take(result.words)
            note = f"Whisper heard '{result.transcript}' after {tries} tries." if bad else ""
            wer = round(result.wer, 4)
            takes.append(Take(work.key, samples, result.transcript, wer, tries, bad, words, note, parts=parts))
        return takes
