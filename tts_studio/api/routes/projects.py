"""`/v1/projects` (long-form, multi-voice scripts rendered in the background with verified takes, exported
as m4b/mp3/wav/flac/opus or captions), `/v1/audio/dictionary` and `/v1/audio/dialogue`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

from tts_studio.api.body import read_json
from tts_studio.api.deps import SettingsDep, SpeechDep
from tts_studio.api.errors import validation_error
from tts_studio.api.forms import read_form, text_field
from tts_studio.api.openapi_bodies import form_body, json_body
from tts_studio.api.routes.speech import stream_speech
from tts_studio.api.schemas import VoiceRef
from tts_studio.api.streaming import SSE_HEADERS, sse_frame
from tts_studio.audio.encode import FORMATS
from tts_studio.errors import InvalidRequest, NotFound, PayloadTooLarge, UnsupportedMediaType
from tts_studio.projects.dictionary import MAX_ENTRIES, Entry
from tts_studio.projects.export import MEDIA_TYPES
from tts_studio.projects.importing import (
    MAX_IMPORT_BYTES,
    MAX_INFLATED_BYTES,
    import_filename,
    import_title,
    script_from_file,
)
from tts_studio.projects.service import ProjectService
from tts_studio.projects.store import wav_bytes
from tts_studio.services.speech import SpeechOrder

router = APIRouter()
TERMINAL = ("done", "failed", "cancelled", "draft")
REFRESH_SECONDS = 5.0  # an SSE subscriber gets the project at least this often


def get_projects(request: Request) -> ProjectService:
    projects: ProjectService = request.app.state.services.projects
    return projects


ProjectsDep = Annotated[ProjectService, Depends(get_projects)]


class ProjectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    script: str = Field(
        description="Markdown: '# Title' starts a chapter, 'Name: text' is a speaker's line, [pause 800ms] is "
        "silence (inside a line: inside that line's one take), [laugh] is an engine tag."
    )
    voices: dict[str, str] = Field(default_factory=dict, description="Speaker -> voice id or name (Narrator too).")
    model: str = "tts-1"
    dictionary: list[Entry] = Field(default_factory=list, max_length=MAX_ENTRIES)


class ProjectPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    script: str | None = None
    voices: dict[str, str] | None = None
    model: str | None = None
    dictionary: list[Entry] | None = Field(None, max_length=MAX_ENTRIES)


class DictionaryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dictionary: list[Entry] = Field(max_length=MAX_ENTRIES)


class RenderBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lines: list[str] | None = Field(None, description="Only these line ids (rendered again even if done).")


class DialogueInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    voice: str | VoiceRef


class DialogueBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: list[DialogueInput] = Field(min_length=1, max_length=100)
    model: str = "tts-1"
    response_format: str = Field("mp3", json_schema_extra={"enum": list(FORMATS)})


async def _optional_json(request: Request, model: type[RenderBody], limit: int) -> RenderBody:
    if request.headers.get("content-length") in (None, "0") and "transfer-encoding" not in request.headers:
        return model()
    return await read_json(request, model, limit)


IMPORT_FIELDS = ("name", "file", "model")
_IMPORT_FORM = form_body(
    ["file"],
    {
        "name": {"type": "string", "minLength": 1, "maxLength": 200, "description": "Defaults to the file's name."},
        "file": {
            "type": "string",
            "format": "binary",
            "description": f".txt, .md or .epub, up to {MAX_IMPORT_BYTES // 2**20} MB (an EPUB's chapters become "
            f"chapters; it may inflate to {MAX_INFLATED_BYTES // 2**20} MB at most).",
        },
        "model": {"type": "string", "default": "tts-1"},
    },
)
CREATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {**json_body(ProjectBody)["requestBody"]["content"], **_IMPORT_FORM["requestBody"]["content"]},
    }
}


async def _imported(request: Request) -> ProjectBody:
    """A multipart import (`name`, `file`, `model`) as a project body; the file has the Projects tab's limits."""
    try:
        form = await read_form(request, MAX_IMPORT_BYTES)
    except PayloadTooLarge:
        raise PayloadTooLarge(f"'file' is larger than {MAX_IMPORT_BYTES // 2**20} MB.", param="file") from None
    try:
        for key in form:
            if key not in IMPORT_FIELDS:
                raise InvalidRequest(
                    f"Unknown field '{key}': an import takes {', '.join(IMPORT_FIELDS)}.",
                    param=key,
                    code="unknown_parameter",
                )
        upload = form.get("file")
        if upload is None:
            raise InvalidRequest(
                "Missing required parameter: 'file' (a .txt, .md or .epub file).",
                param="file",
                code="missing_required_parameter",
            )
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("'file' must be a file part, not a text field.", param="file", code="invalid_type")
        data = await upload.read(MAX_IMPORT_BYTES + 1)
        filename = import_filename(upload.filename, upload.content_type)
        name = text_field(form, "name") or import_title(filename)
        model = text_field(form, "model") or "tts-1"
    finally:
        await form.close()
    script = await anyio.to_thread.run_sync(script_from_file, filename, data)
    try:
        return ProjectBody(name=name, script=script, model=model)
    except ValidationError as exc:
        raise validation_error(list(exc.errors())) from None


@router.post("/projects", openapi_extra=CREATE_BODY, status_code=201)
async def create_project(request: Request, projects: ProjectsDep, settings: SettingsDep) -> dict[str, Any]:
    """A project from a JSON body (the script inline) or an imported file (multipart/form-data)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    imported = media_type == "multipart/form-data"
    if imported:
        body = await _imported(request)
    elif media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"Send the project as application/json or import a file as multipart/form-data "
            f"(name, file), not '{media_type}'."
        )
    else:
        body = await read_json(request, ProjectBody, settings.max_body_bytes)
    try:
        project = await anyio.to_thread.run_sync(
            projects.create, body.name, body.script, body.voices, body.model, body.dictionary
        )
    except InvalidRequest as exc:
        if imported and exc.param == "script":  # the script came from the file: name the field that was sent
            raise InvalidRequest(
                f"The file does not make a script: {exc.message}", param="file", code=exc.code
            ) from None
        raise
    return await anyio.to_thread.run_sync(projects.view, project)


@router.get("/projects")
async def list_projects(projects: ProjectsDep) -> dict[str, Any]:
    def listing() -> list[dict[str, Any]]:
        return [projects.view(p, full=False) for p in projects.store.all()]

    return {"object": "list", "data": await anyio.to_thread.run_sync(listing)}


@router.get("/projects/{project_id}")
async def get_project(project_id: str, projects: ProjectsDep) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(lambda: projects.view(projects.store.get(project_id)))


@router.patch("/projects/{project_id}", openapi_extra=json_body(ProjectPatch))
async def patch_project(
    project_id: str, request: Request, projects: ProjectsDep, settings: SettingsDep
) -> dict[str, Any]:
    body = await read_json(request, ProjectPatch, settings.max_body_bytes)
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if "dictionary" in changes:
        changes["dictionary"] = body.dictionary
    project = await anyio.to_thread.run_sync(projects.update, project_id, changes)
    return await anyio.to_thread.run_sync(projects.view, project)


@router.delete("/projects/{project_id}")
async def delete_project(project_id: str, projects: ProjectsDep) -> dict[str, Any]:
    await anyio.to_thread.run_sync(projects.delete, project_id)
    return {"id": project_id, "object": "project.deleted", "deleted": True}


@router.put("/projects/{project_id}/dictionary", openapi_extra=json_body(DictionaryBody))
async def put_dictionary(
    project_id: str, request: Request, projects: ProjectsDep, settings: SettingsDep
) -> dict[str, Any]:
    body = await read_json(request, DictionaryBody, settings.max_body_bytes)
    project = await anyio.to_thread.run_sync(projects.update, project_id, {"dictionary": body.dictionary})
    return await anyio.to_thread.run_sync(projects.view, project)


@router.post("/projects/{project_id}/render", openapi_extra=json_body(RenderBody), status_code=202)
async def render_project(
    project_id: str, request: Request, projects: ProjectsDep, settings: SettingsDep
) -> dict[str, Any]:
    body = await _optional_json(request, RenderBody, settings.max_body_bytes)
    project = await anyio.to_thread.run_sync(projects.renderer.submit, project_id, body.lines)
    return await anyio.to_thread.run_sync(projects.view, project)


@router.post("/projects/{project_id}/cancel")
async def cancel_project(project_id: str, projects: ProjectsDep) -> dict[str, Any]:
    project = await anyio.to_thread.run_sync(projects.renderer.cancel, project_id)
    return await anyio.to_thread.run_sync(projects.view, project)


@router.post("/projects/{project_id}/lines/{line_id}/approve")
async def approve_line(project_id: str, line_id: str, projects: ProjectsDep) -> dict[str, Any]:
    project = await anyio.to_thread.run_sync(projects.approve, project_id, line_id)
    return await anyio.to_thread.run_sync(projects.view, project)


@router.get("/projects/{project_id}/lines/{line_id}/audio", response_class=Response)
async def line_audio(project_id: str, line_id: str, projects: ProjectsDep) -> Response:
    def take_wav() -> bytes:
        project = projects.store.get(project_id)
        project.line(line_id)
        take = project.load_take(projects.keys(project)[line_id])
        if take is None:
            raise InvalidRequest(f"Line {line_id} has no take yet.", param="line_id", code="not_rendered")
        return wav_bytes(take.samples)

    return Response(await anyio.to_thread.run_sync(take_wav), media_type="audio/wav")


@router.get("/projects/{project_id}/events", response_class=StreamingResponse)
async def project_events(project_id: str, projects: ProjectsDep) -> StreamingResponse:
    """SSE: the project's status and progress on every change, until it stops rendering (or is deleted).
    Between changes a subscriber waits on the event loop, holding no worker thread."""
    renderer = projects.renderer

    def summary() -> dict[str, Any]:
        return projects.view(projects.store.get(project_id), full=False)

    version = renderer.version  # read before the view: a change in between is not missed
    first = await anyio.to_thread.run_sync(summary)

    async def events() -> AsyncIterator[bytes]:
        nonlocal version
        view = first
        while True:
            yield sse_frame({"type": "project.progress", **view})
            if view["status"] in TERMINAL and renderer.job(project_id) is None:
                return
            with anyio.move_on_after(REFRESH_SECONDS):  # also sent now and then without a change
                version = await renderer.next_change(version)
            try:
                view = await anyio.to_thread.run_sync(summary)
            except NotFound:
                yield sse_frame({"type": "project.deleted", "id": project_id, "status": "deleted"})
                return

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/projects/{project_id}/export", response_class=Response)
async def export_project(
    project_id: str,
    projects: ProjectsDep,
    format: Annotated[str, Query(description="m4b, mp3, wav, flac, opus, srt, vtt or json")] = "m4b",
    chapter: Annotated[str | None, Query(description="Only this chapter (1-based).")] = None,
    loudness: Annotated[str, Query(description="audiobook (-20 LUFS), podcast (-16 LUFS) or none")] = "audiobook",
) -> Response:
    number = None
    if chapter is not None:
        if not chapter.isdigit():
            raise InvalidRequest("'chapter' must be a chapter number (1-based).", param="chapter")
        number = int(chapter)
    data = await anyio.to_thread.run_sync(projects.export, project_id, format, number, loudness)
    extension = {"opus": "ogg"}.get(format, format)
    headers = {"Content-Disposition": f'attachment; filename="{project_id}.{extension}"'}
    return Response(data, media_type=MEDIA_TYPES[format], headers=headers)


@router.get("/audio/dictionary")
def get_global_dictionary(request: Request) -> dict[str, Any]:
    entries = request.app.state.services.dictionary.entries()
    return {"object": "dictionary", "dictionary": [e.model_dump() for e in entries]}


@router.put("/audio/dictionary", openapi_extra=json_body(DictionaryBody))
async def put_global_dictionary(request: Request, settings: SettingsDep) -> dict[str, Any]:
    body = await read_json(request, DictionaryBody, settings.max_body_bytes)
    await anyio.to_thread.run_sync(request.app.state.services.dictionary.replace, body.dictionary)
    return {"object": "dictionary", "dictionary": [e.model_dump() for e in body.dictionary]}


@router.post("/audio/dialogue", openapi_extra=json_body(DialogueBody), response_class=StreamingResponse)
async def create_dialogue(request: Request, speech: SpeechDep, settings: SettingsDep) -> StreamingResponse:
    """Several speakers in one streamed audio (the shape of ElevenLabs' text-to-dialogue)."""
    body = await read_json(request, DialogueBody, settings.max_body_bytes)
    if body.response_format not in FORMATS:
        raise InvalidRequest(f"'response_format' must be one of {', '.join(FORMATS)}.", param="response_format")
    total = sum(len(item.text) for item in body.inputs)
    if total > settings.max_input_chars * 4:
        raise InvalidRequest(
            f"The inputs hold {total} characters; the limit is {settings.max_input_chars * 4}.",
            param="inputs",
            code="string_above_max_length",
        )

    def plans() -> list[Any]:
        made = []
        for index, item in enumerate(body.inputs):
            voice = item.voice.id if isinstance(item.voice, VoiceRef) else item.voice
            try:
                made.append(speech.plan(SpeechOrder(model=body.model, input=item.text, voice=voice)))
            except InvalidRequest as exc:
                exc.param = f"inputs[{index}].{exc.param or 'text'}"
                raise
        return made

    return await stream_speech(request, await anyio.to_thread.run_sync(plans), body.response_format)
