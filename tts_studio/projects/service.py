"""Projects as a service: what the API routes and the Projects tab call (create, view, edit, render, review,
export). Validation happens here, before anything is written."""

from __future__ import annotations

import time
from typing import Any

from tts_studio.errors import InvalidRequest, StudioError
from tts_studio.projects.dictionary import Entry, GlobalDictionary
from tts_studio.projects.export import export
from tts_studio.projects.render import Job, ProjectRenderer
from tts_studio.projects.script import MAX_SCRIPT_CHARS, NARRATOR, ScriptError, parse, speakers, tags_in
from tts_studio.projects.store import Project, ProjectStore
from tts_studio.services.speech import SpeechService

__all__ = ["MAX_SCRIPT_CHARS", "ProjectService"]
SUMMARY_FIELDS = {
    "id",
    "object",
    "name",
    "model",
    "voices",
    "status",
    "error",
    "created_at",
    "updated_at",
    "last_render",
}


class ProjectService:
    def __init__(
        self, store: ProjectStore, renderer: ProjectRenderer, speech: SpeechService, dictionary: GlobalDictionary
    ) -> None:
        self.store, self.renderer, self.speech, self.dictionary = store, renderer, speech, dictionary
        self._fixed_views: dict[str, tuple[Project, tuple[list[str], list[str]]]] = {}

    # -- validation ---------------------------------------------------------------------------------------
    def _check(self, script: str, voices: dict[str, str], model: str) -> None:
        if len(script) > MAX_SCRIPT_CHARS:
            raise InvalidRequest(f"'script' is longer than {MAX_SCRIPT_CHARS} characters.", param="script")
        try:
            chapters = parse(script)
        except ScriptError as exc:
            raise InvalidRequest(
                str(exc), param="script", code="empty_script" if not script.strip() else None
            ) from None
        engine_id, _ = self.speech.resolve_model(model)
        info = self.speech.manager.info(engine_id)
        for speaker in speakers(chapters):
            voice = voices.get(speaker) or voices.get(NARRATOR) or "alloy"
            try:
                self.speech.voices.resolve(voice, info)
            except StudioError as exc:
                raise InvalidRequest(
                    f"voices['{speaker}']: {exc.message}", param=f"voices.{speaker}", code="unknown_voice"
                ) from None

    def create(self, name: str, script: str, voices: dict[str, str], model: str, dictionary: list[Entry]) -> Project:
        self._check(script, voices, model)
        return self.store.create(name, script, voices, model, dictionary)

    def update(self, project_id: str, changes: dict[str, Any]) -> Project:
        """`changes`: any of name, script, voices, model, dictionary (a list of Entry)."""
        data = self.store.get(project_id).data
        merged = {"script": data.script, "voices": data.voices, "model": data.model, **changes}
        self._check(merged["script"], merged["voices"], merged["model"])
        return self.store.update(project_id, **changes)

    def delete(self, project_id: str) -> None:
        self.renderer.cancel(project_id)
        self.store.delete(project_id)
        self._fixed_views.pop(project_id, None)

    # -- what clients see --------------------------------------------------------------------------------
    def keys(self, project: Project) -> dict[str, str]:
        """Line id -> take key as the project stands (dictionaries and tags applied)."""
        return {line.id: key for line, _, key in self.renderer.spoken_lines(project)}

    def _fixed(self, project: Project) -> tuple[list[str], list[str]]:
        """(speakers, tag warnings): fixed for one version of the project, so worked out once per version."""
        cached = self._fixed_views.get(project.id)
        if cached is not None and cached[0] is project:
            return cached[1]
        engine_id, _ = self.speech.resolve_model(project.data.model)
        supported = set(self.speech.manager.info(engine_id).tags)
        warnings = [
            f"{line.id}: [{tag}] is not supported by {engine_id} and is removed."
            for line in project.lines()
            for tag in tags_in(line.text)
            if tag not in supported
        ]
        fixed = speakers(project.chapters), warnings
        self._fixed_views[project.id] = (project, fixed)
        return fixed

    def _lines(self, project: Project, job: Job | None) -> tuple[list[dict[str, Any]], int, int]:
        """(chapters with every line's status and take, lines with a take, lines in all), from the disk."""
        keys = self.keys(project)
        chapters, done = [], 0
        for chapter in project.chapters:
            lines = []
            for line in chapter.lines:
                meta = project.take_meta(keys[line.id])
                status = "pending"
                if meta is not None:
                    done += 1
                    status = "approved" if meta["approved"] else ("flagged" if meta["flagged"] else "done")
                elif job is not None and line.id in job.active:
                    status = "rendering"
                lines.append(
                    {
                        "id": line.id,
                        "speaker": line.speaker,
                        "voice": project.voice_for(line.speaker),
                        "text": line.text,
                        "status": status,
                        "wer": meta["wer"] if meta else None,
                        "flagged": bool(meta and meta["flagged"] and not meta["approved"]),
                        "takes": meta["tries"] if meta else 0,
                        "transcript": meta["transcript"] if meta else None,
                        "note": meta["note"] if meta else None,
                        "pause_after": line.pause_after,
                    }
                )
            chapters.append({"title": chapter.title, "lines": lines})
        return chapters, done, len(keys)

    def view(self, project: Project, full: bool = True) -> dict[str, Any]:
        """The project as clients see it. The summary (`full=False`, what each progress event sends) costs the
        same for any number of lines while a render runs: its counts come from the render, not the disk."""
        job = self.renderer.job(project.id)
        chapters: list[dict[str, Any]] = []
        if full or job is None or not job.started:
            chapters, done, total = self._lines(project, job)
        else:
            done, total = job.done, job.total
        speakers_, warnings = self._fixed(project)
        progress: dict[str, Any] = {"done": done, "total": total, "eta_seconds": None}
        if job is not None:
            progress.update(
                synthesis_seconds=round(job.synthesis_seconds, 2),
                verification_seconds=round(job.verification_seconds, 2),
            )
        if job is not None and job.started and job.done > job.done_at_start:
            per_line = (time.monotonic() - job.started) / (job.done - job.done_at_start)
            progress["eta_seconds"] = round(per_line * (job.total - job.done), 1)
        view = project.data.model_dump(mode="json", include=SUMMARY_FIELDS)
        view.update(progress=progress, speakers=list(speakers_), warnings=list(warnings))
        if full:
            view.update(project.data.model_dump(mode="json", include={"script", "dictionary"}), chapters=chapters)
        return view

    # -- actions -------------------------------------------------------------------------------------------
    def approve(self, project_id: str, line_id: str) -> Project:
        project = self.store.get(project_id)
        project.line(line_id)
        key = self.keys(project)[line_id]
        take = project.load_take(key)
        if take is None:
            raise InvalidRequest(f"Line {line_id} has no take to approve yet.", param="line_id", code="not_rendered")
        take.approved = True
        self.store.save_take(project, take)
        return project

    def export(self, project_id: str, fmt: str, chapter: int | None, preset: str) -> bytes:
        project = self.store.get(project_id)
        return export(project, self.keys(project), fmt, chapter, preset)
