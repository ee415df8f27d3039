"""`/openapi.json` (complete: every body, every real error status, no 422) and `/docs`, a plain page
rendered here from it: no CDN, no scripts. Both sit behind the API key when one is set."""

from __future__ import annotations

import html
import json
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse

router = APIRouter(include_in_schema=False)

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
_STATUS_TEXT = {
    "400": "Invalid request (bad JSON, bad value, missing parameter, unsupported voice)",
    "401": "Missing or wrong API key (only when a key is set)",
    "403": "Foreign Origin or Host (browser guard)",
    "404": "Unknown model, voice or route",
    "413": "Body over the size cap",
    "415": "Wrong Content-Type",
    "429": "Too many requests in flight (Retry-After)",
    "500": "Internal error (no internals disclosed)",
    "503": "Engine unavailable or queue full (with how to fix it; Retry-After when busy)",
}
_WRITE = ("400", "401", "403", "413", "415", "429", "500", "503")


def _error_codes(method: str, path: str) -> tuple[str, ...]:
    codes: tuple[str, ...] = ("400", "401", "403", "500")
    if method in ("post", "put", "patch"):
        codes = _WRITE
    if "{" in path or path.endswith("/speech"):
        codes = (*codes, "404")
    if not path.startswith("/v1"):
        codes = tuple(c for c in codes if c != "401")
    return tuple(sorted(set(codes)))


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document with the envelope on every error status and FastAPI's 422 removed."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, routes=app.routes, description="TTS Studio API")
    doc.setdefault("components", {}).setdefault("schemas", {})["ErrorEnvelope"] = _ERROR_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        doc["components"]["schemas"].pop(name, None)
    ref = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            for content in operation.get("requestBody", {}).get("content", {}).values():
                doc["components"]["schemas"].update(content.get("schema", {}).pop("$defs", {}))
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for code in _error_codes(method, path):
                responses.setdefault(
                    code, {"description": _STATUS_TEXT[code], "content": {"application/json": {"schema": ref}}}
                )
    app.openapi_schema = doc
    return doc


@router.get("/openapi.json")
def openapi_document(request: Request) -> JSONResponse:
    return JSONResponse(build_openapi(request.app))


def _render(doc: dict[str, Any]) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>TTS Studio API</title>",
        "<style>body{font:15px system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "code,pre{font:13px ui-monospace,monospace}pre{background:#f4f4f8;padding:.6rem;overflow:auto}"
        "h2{font-size:1.05rem;margin-top:2rem}</style></head><body>",
        f"<h1>TTS Studio API {html.escape(str(doc['info']['version']))}</h1>",
        "<p>OpenAI-compatible. Machine-readable: <a href='openapi.json'>openapi.json</a>. "
        'Every error is <code>{"error": {"message", "type", "param", "code"}}</code>.</p>',
    ]
    for path, operations in doc.get("paths", {}).items():
        for method, op in operations.items():
            parts.append(f"<h2><code>{method.upper()} {html.escape(path)}</code></h2>")
            if op.get("summary") or op.get("description"):
                parts.append(f"<p>{html.escape(op.get('description') or op.get('summary', ''))}</p>")
            for media, content in op.get("requestBody", {}).get("content", {}).items():
                schema = json.dumps(content.get("schema", {}), indent=1)[:4000]
                parts.append(f"<p>Body <code>{html.escape(media)}</code>:</p><pre>{html.escape(schema)}</pre>")
            codes = ", ".join(sorted(op.get("responses", {})))
            parts.append(f"<p>Responses: {html.escape(codes)}</p>")
    parts.append("</body></html>")
    return "".join(parts)


@router.get("/docs", response_class=HTMLResponse)
def docs_page(request: Request) -> HTMLResponse:
    return HTMLResponse(_render(build_openapi(request.app)))
