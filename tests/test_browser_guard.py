"""A hostile page in real Chromium, served from a second loopback origin (http://127.0.0.2:<port>), tries
everything a website could do to a default studio: nothing is read, written or remapped. The same page
served from an allowed origin (http://localhost:<port>) can do all of it."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.ui_helpers import browser, ui_server  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser
VOICES = Path(__file__).resolve().parents[1] / "voices"

# Each attempt reports "ok <status>" when the page could read the answer, "sent" for opaque no-cors
# requests (the server state tells whether they did anything), or "blocked".
ATTACK_PAGE = (Path(__file__).parent / "attack_page.html").read_text(encoding="utf-8")


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = (VOICES / "lark.flac").read_bytes() if self.path == "/clip.flac" else ATTACK_PAGE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "audio/flac" if self.path == "/clip.flac" else "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page_servers() -> Iterator[dict[str, str]]:
    """The attack page on a foreign loopback origin and on an allowed one."""
    servers = {"foreign": http.server.ThreadingHTTPServer(("127.0.0.2", 0), _Handler),
               "allowed": http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)}  # fmt: skip
    for srv in servers.values():
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield {
        "foreign": f"http://127.0.0.2:{servers['foreign'].server_address[1]}/",
        "allowed": f"http://localhost:{servers['allowed'].server_address[1]}/",
    }
    for srv in servers.values():
        srv.shutdown()


def _state(live: LiveServer) -> tuple[Any, ...]:
    voices = httpx.get(f"{live.base_url}/audio/voices", params={"all": "true"}).json()["voices"]
    mapping = httpx.get(f"{live.base_url}/audio/voice_map").json()["data"]
    root = Path(live.app.state.settings.data_dir) / "voices"
    return (sorted((v["id"], v["name"]) for v in voices), [(m["id"], m["maps_to"]) for m in mapping],
            sorted(p.name for p in root.iterdir()))  # fmt: skip


def _run(browser: Any, url: str, studio: str, voice_id: str) -> dict[str, str]:  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    results: dict[str, str] = page.evaluate("([s, v]) => attack(s, v)", [studio, voice_id])
    context.close()
    return results


def test_foreign_page_can_do_nothing(browser: Any, ui_server: LiveServer, page_servers: dict[str, str]) -> None:  # noqa: F811
    files = {"audio_sample": ("dusk.flac", (VOICES / "dusk.flac").read_bytes())}
    mine = httpx.post(f"{ui_server.base_url}/audio/voices", data={"name": "Private", "transcript": "x"}, files=files)
    voice_id = mine.json()["id"]
    before = _state(ui_server)
    results = _run(browser, page_servers["foreign"], ui_server.url, voice_id)
    for name in ("list", "download", "upload_cors", "rename", "remap", "gradio_config", "delete"):
        assert results[name] == "blocked", (name, results[name])
    assert _state(ui_server) == before  # the no-cors posts changed nothing either

    allowed = _run(browser, page_servers["allowed"], ui_server.url, voice_id)
    assert allowed["list"].startswith("ok 200") and "Private" in allowed["list"]
    assert allowed["download"].startswith("ok 200")
    assert allowed["upload_cors"].startswith("ok 200") and allowed["rename"].startswith("ok 200")
    assert allowed["remap"].startswith("ok 200") and allowed["delete"].startswith("ok 200")
    after = _state(ui_server)
    assert voice_id not in {v for v, _ in after[0]} and {"Planted", "Planted too"} <= {n for _, n in after[0]}
    httpx.delete(f"{ui_server.base_url}/audio/voice_map/alloy")
    httpx.delete(f"{ui_server.base_url}/audio/voice_map/nova")
    for voice, name in after[0]:
        if name.startswith("Planted"):
            httpx.delete(f"{ui_server.base_url}/audio/voices/{voice}")
