"""The browser guard on a default server: foreign origins and Host names are refused before any side
effect; loopback, same-origin and configured origins, and clients without an Origin, work."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer
from tests.test_errors import assert_envelope
from tts_studio.api.guard import BrowserGuard, BrowserPolicy

VOICES = Path(__file__).resolve().parents[1] / "voices"
EVIL = {"Origin": "http://evil.example"}


def _voices_on_disk(live: LiveServer) -> list[str]:
    root = Path(live.app.state.settings.data_dir) / "voices"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_foreign_origin_cannot_read_write_or_remap(server: LiveServer) -> None:
    before, mapping = _voices_on_disk(server), httpx.get(f"{server.base_url}/audio/voice_map").json()
    attempts = [
        httpx.get(f"{server.base_url}/audio/voices", headers=EVIL),
        httpx.get(f"{server.base_url}/audio/voices/bundled_heart/audio", headers=EVIL),
        # a form post that needs no preflight: refused before the body is read
        httpx.post(
            f"{server.base_url}/audio/voices",
            headers=EVIL,
            data={"name": "Pwned"},
            files={"audio_sample": ("a.flac", (VOICES / "lark.flac").read_bytes(), "audio/flac")},
        ),
        httpx.put(f"{server.base_url}/audio/voice_map/alloy", headers=EVIL, json={"voice": "heart"}),
        httpx.delete(f"{server.base_url}/audio/voice_map/alloy", headers=EVIL),
        httpx.post(
            f"{server.base_url}/audio/speech",
            headers={**EVIL, "Content-Type": "text/plain"},
            content=json.dumps({"model": "tts-1", "voice": "alloy", "input": "hi"}),
        ),
        httpx.request(
            "OPTIONS", f"{server.base_url}/audio/voices", headers={**EVIL, "Access-Control-Request-Method": "POST"}
        ),
        httpx.get(f"{server.url}/health", headers={"Origin": "null"}),
    ]
    for response in attempts:
        assert response.status_code == 403, response.request.url
        assert_envelope(response.json(), "origin_not_allowed")
        assert "access-control-allow-origin" not in response.headers
    assert _voices_on_disk(server) == before
    assert httpx.get(f"{server.base_url}/audio/voice_map").json() == mapping


def test_cross_site_subresource_without_origin_is_refused(server: LiveServer) -> None:
    audio = f"{server.base_url}/audio/voices/bundled_heart/audio"
    refused = httpx.get(audio, headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"})
    assert refused.status_code == 403
    # a link the user follows from another site still opens the studio
    assert (
        httpx.get(
            f"{server.url}/health", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
        ).status_code
        == 200
    )
    assert httpx.get(audio, headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200


@pytest.mark.parametrize(
    "origin", ["http://localhost:3000", "http://127.0.0.1:8080", "http://[::1]:5173", "https://localhost"]
)
def test_loopback_origins_are_allowed_with_cors(server: LiveServer, origin: str) -> None:
    response = httpx.get(f"{server.base_url}/models", headers={"Origin": origin})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin
    assert "origin" in response.headers["vary"].lower()


def test_same_origin_and_configured_origins(live_server: Callable[..., LiveServer]) -> None:
    live = live_server(allowed_origins=["https://my.webui.example"], allowed_hosts=["studio.lan"])
    port = live.url.rsplit(":", 1)[1]
    configured = httpx.get(f"{live.base_url}/models", headers={"Origin": "https://my.webui.example"})
    assert configured.status_code == 200
    assert configured.headers["access-control-allow-origin"] == "https://my.webui.example"
    same = httpx.get(
        f"{live.base_url}/models", headers={"Host": f"studio.lan:{port}", "Origin": f"http://studio.lan:{port}"}
    )
    assert same.status_code == 200
    other = httpx.get(f"{live.base_url}/models", headers={"Origin": "https://other.example"})
    assert other.status_code == 403


def test_star_origin_only_when_set(live_server: Callable[..., LiveServer]) -> None:
    live = live_server(allowed_origins=["*"])
    response = httpx.get(f"{live.base_url}/models", headers=EVIL)
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == "http://evil.example"


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8600", "127.0.0.1.nip.io", "localhost.evil.example"])
def test_foreign_host_header_is_refused(server: LiveServer, host: str) -> None:
    for path in ("/v1/models", "/v1/audio/voices", "/health"):
        response = httpx.get(f"{server.url}{path}", headers={"Host": host})
        assert response.status_code == 403
        assert_envelope(response.json(), "host_not_allowed")


@pytest.mark.parametrize("host", ["localhost", "localhost:9", "127.0.0.1:1", "[::1]:8600"])
def test_loopback_host_names_are_served(server: LiveServer, host: str) -> None:
    assert httpx.get(f"{server.url}/health", headers={"Host": host}).status_code == 200


def test_policy_for_a_wildcard_bind() -> None:
    policy = BrowserPolicy("0.0.0.0", [], [])
    assert policy.host_allowed("192.168.1.20:8600") and policy.host_allowed("[fe80::1]:8600")
    assert not policy.host_allowed("evil.example")
    lan = BrowserPolicy("192.168.1.20", ["studio.home"], [])
    assert lan.host_allowed("192.168.1.20:8600") and lan.host_allowed("studio.home")
    assert not lan.host_allowed("10.0.0.1") and not lan.host_allowed("evil.example")
    assert lan.origin_allowed("http://192.168.1.20:8600", "192.168.1.20:8600")  # the studio's own page
    assert not lan.origin_allowed("http://192.168.1.20:9999", "192.168.1.20:8600")
    for odd in ("http://[oops", "http://localhost:3000@evil.example", "localhost", "ws://localhost", ""):
        assert not lan.origin_allowed(odd, "192.168.1.20:8600"), odd


def test_ui_is_guarded_and_not_frameable(live_server: Callable[..., LiveServer]) -> None:
    live = live_server(enable_ui=True)
    page = httpx.get(f"{live.url}/ui/")
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in page.headers["content-security-policy"]
    config = httpx.get(f"{live.url}/ui/config")
    assert config.status_code == 200 and '"run_history":true' not in config.text.replace(" ", "")
    for request in (
        httpx.get(f"{live.url}/ui/config", headers=EVIL),
        httpx.post(f"{live.url}/ui/gradio_api/queue/join", headers=EVIL, json={"fn_index": 0, "data": []}),
        httpx.post(f"{live.url}/ui/gradio_api/run/assign_voice", headers=EVIL, json={"data": ["alloy", "heart"]}),
        httpx.get(f"{live.url}/ui/", headers={"Host": "evil.example"}),
    ):
        assert request.status_code == 403
    assert httpx.get(f"{live.url}/ui/gradio_api/run-history/buckets").status_code in (404, 405)


def test_websocket_handshake_from_a_foreign_origin_is_refused() -> None:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocket, WebSocketDisconnect

    accepted: list[str] = []

    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        accepted.append(ws.headers.get("origin", ""))
        await ws.send_text("hi")
        await ws.close()

    app = BrowserGuard(Starlette(routes=[WebSocketRoute("/ws", echo)]), BrowserPolicy("127.0.0.1", [], []))
    client = TestClient(app, base_url="http://127.0.0.1")
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect("/ws", headers={"Host": "127.0.0.1", "Origin": "http://evil.example"}),
    ):
        pass
    assert refused.value.code == 1008 and accepted == []
    with client.websocket_connect("/ws", headers={"Host": "127.0.0.1", "Origin": "http://localhost:3000"}) as ws:
        assert ws.receive_text() == "hi"
    assert accepted == ["http://localhost:3000"]


def test_ui_banner_when_exposed_without_a_key(live_server: Callable[..., LiveServer]) -> None:
    exposed = live_server(enable_ui=True, host="0.0.0.0")
    assert "exposure-banner" in httpx.get(f"{exposed.url}/ui/config").text
    keyed = live_server(enable_ui=True, host="0.0.0.0", api_key="k")
    config = httpx.get(f"{keyed.url}/ui/config", headers={"Authorization": "Bearer k"})
    assert "exposure-banner" not in config.text
