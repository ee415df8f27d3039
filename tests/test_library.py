"""The library on disk: crash safety (injected failure and a real SIGKILL) and SSRF-guarded fetching."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from tts_studio.errors import InvalidRequest, PayloadTooLarge
from tts_studio.services import library as library_module
from tts_studio.services.fetch import fetch_audio, refusal
from tts_studio.services.library import VoiceLibrary


def wav(seconds: float = 2.0) -> bytes:
    t = np.arange(int(seconds * 24000)) / 24000
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 24000, format="WAV")
    return buf.getvalue()


def snapshot(root: Path) -> tuple[str, list[str]]:
    return (root / "index.json").read_text(), sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_failed_index_write_leaves_library_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = VoiceLibrary(tmp_path)
    lib.add("Kept", wav(), "k.wav", transcript="x")
    before = snapshot(tmp_path)

    def boom(path: Path, payload: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(library_module, "atomic_write_json", boom)
    with pytest.raises(OSError):
        lib.add("Lost", wav(), "l.wav", transcript="x")
    assert snapshot(tmp_path) == before
    assert [v.name for v in lib.all()] == ["Kept"]
    with pytest.raises(OSError):
        lib.delete(lib.all()[0].id)
    assert snapshot(tmp_path) == before and [v.name for v in lib.all()] == ["Kept"]


def test_sigkill_between_steps_recovers_on_open(tmp_path: Path) -> None:
    """A writer killed after moving the voice folder in, before the index names it."""
    VoiceLibrary(tmp_path).add("Kept", wav(), "k.wav", transcript="x")
    before = snapshot(tmp_path)
    script = textwrap.dedent(f"""
        import io, os, signal, numpy as np, soundfile as sf
        from pathlib import Path
        from tts_studio.services import library
        real = library.atomic_write_json
        def die(path, payload):
            os.kill(os.getpid(), signal.SIGKILL)   # crash before the index is replaced
        library.atomic_write_json = die
        lib = library.VoiceLibrary(Path({str(tmp_path)!r}))
        buf = io.BytesIO(); sf.write(buf, np.sin(np.arange(48000) / 5).astype("float32") * 0.3, 24000, format="WAV")
        lib.add("Half", buf.getvalue(), "h.wav", transcript="x")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert len(leftovers) == 3  # index.json, the kept voice and the orphan the crash left
    reopened = VoiceLibrary(tmp_path)
    assert [v.name for v in reopened.all()] == ["Kept"]
    assert snapshot(tmp_path) == before
    json.loads((tmp_path / "index.json").read_text())


def test_interrupted_atomic_write_keeps_old_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = VoiceLibrary(tmp_path)
    lib.add("Kept", wav(), "k.wav", transcript="x")
    before = (tmp_path / "index.json").read_text()

    def no_replace(src: str, dst: str) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(OSError):
        lib.update(lib.all()[0].id, name="Renamed")
    assert (tmp_path / "index.json").read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".index")]
    monkeypatch.undo()
    assert [v.name for v in VoiceLibrary(tmp_path).all()] == ["Kept"]


def test_new_audio_means_new_cache_key(tmp_path: Path) -> None:
    lib = VoiceLibrary(tmp_path)
    a = lib.add("A", wav(2.0), transcript="x")
    b = lib.add("B", wav(3.0), transcript="x")
    ref_a, ref_b = lib.reference(a.id), lib.reference(b.id)
    assert ref_a.cache_path("chatterbox") != ref_b.cache_path("chatterbox")
    assert ref_a.cache_path("chatterbox").parent == tmp_path / a.id / "cache"


@pytest.mark.parametrize(
    ("address", "why"),
    [("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.0.0.8", "private"), ("192.168.0.1", "private"),
     ("172.16.5.4", "private"), ("169.254.169.254", "link-local (cloud metadata)"), ("0.0.0.0", "private"),
     ("::ffff:127.0.0.1", "loopback"), ("fe80::1", "link-local (cloud metadata)"), ("224.0.0.1", "multicast"),
     ("100.64.0.1", "non-public"), ("93.184.215.14", None)],
)  # fmt: skip
def test_address_policy(address: str, why: str | None) -> None:
    assert refusal(address) == why


def _public(host: str, port: int) -> list[str]:
    table = {"voices.example": ["93.184.215.14"], "metadata.example": ["169.254.169.254"],
             "mixed.example": ["93.184.215.14", "10.0.0.1"]}  # fmt: skip
    return table[host]


def test_redirects_are_checked_again() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.host} {request.headers['host']}")
        targets = {"/to-loopback": "http://127.0.0.1/x", "/to-metadata": "http://metadata.example/latest",
                   "/relative": "/audio.wav"}  # fmt: skip
        if request.url.path in targets:
            return httpx.Response(302, headers={"location": targets[request.url.path]})
        return httpx.Response(200, content=wav())

    transport = httpx.MockTransport(handler)
    for path in ("/to-loopback", "/to-metadata"):
        with pytest.raises(InvalidRequest) as info:
            fetch_audio(f"http://voices.example{path}", 10_000_000, resolver=_public, transport=transport)
        assert info.value.code == "url_not_allowed"
    assert (
        fetch_audio("http://voices.example/relative", 10_000_000, resolver=_public, transport=transport)[:4] == b"RIFF"
    )
    assert all(s.startswith("93.184.215.14 voices.example") for s in seen)  # pinned IP, original Host
    with pytest.raises(InvalidRequest):
        fetch_audio("http://mixed.example/a.wav", 10_000_000, resolver=_public, transport=transport)
    with pytest.raises(PayloadTooLarge):
        fetch_audio("http://voices.example/a.wav", 1000, resolver=_public, transport=transport)


def test_redirect_loops_stop() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(302, headers={"location": "/again"}))
    with pytest.raises(InvalidRequest, match="redirected"):
        fetch_audio("http://voices.example/a", 10_000, resolver=_public, transport=transport)
