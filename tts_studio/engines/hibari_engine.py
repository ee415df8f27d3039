"""The embedded default engine: hibari-tts, whose `heart` voice ships inside its wheel (CPU, offline).

Its other voices (British and American, female and male) are separate small models that download only
when the user asks (`tts-studio download hibari`, the Models tab) into the user cache, are checked
against their sha256 when they arrive and again when they load, and work offline afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from tts_studio.config import Settings
from tts_studio.engines.base import AudioChunk, EngineInfo, ParamSpec, SynthesisRequest
from tts_studio.errors import EngineUnavailable

DEFAULT_VOICE = "heart"
HIBARI_INFO = EngineInfo(
    id="hibari",
    name="Hibari (embedded)",
    description="Small English voices (hibari-tts); heart ships in the wheel, the others download on request.",
    sample_rate=24000,
    voices=(DEFAULT_VOICE,),  # plus the downloaded ones: see hibari_info()
    languages=("en",),
    speed_range=(0.5, 2.0),
    streaming=True,
    max_chunk_chars=400,
    params=(ParamSpec("seed", int, None, 0, 2**32 - 1, "Fixes the noise; same seed, same audio."),),
)


def voice_registry() -> dict[str, dict[str, Any]]:
    """hibari's own registry of voices (name -> file, sha256, gender, accent...); a light import."""
    from hibari.voices import VOICES

    registry: dict[str, dict[str, Any]] = VOICES
    return registry


def extra_voices() -> list[str]:
    """The voices that are not in the wheel."""
    return [name for name, voice in voice_registry().items() if not voice.get("bundled")]


def voice_dir(settings: Settings) -> Path:
    return settings.cache_dir / "hibari"


def downloaded_voices(folder: Path) -> list[str]:
    """Extra voices whose model file is in `folder` (the checksum is checked when one loads)."""
    return [name for name in extra_voices() if (folder / voice_registry()[name]["file"]).is_file()]


def hibari_info(folder: Path) -> EngineInfo:
    """The engine's info with the voices present on this machine."""
    return replace(HIBARI_INFO, voices=(DEFAULT_VOICE, *downloaded_voices(folder)))


def checksum_ok(path: Path, sha256: str) -> bool:
    """The file is there and is the one hibari's registry names (its own sha256 helper)."""
    from hibari.voices import sha256_of

    return path.is_file() and bool(sha256_of(str(path)) == sha256)


class HibariEngine:
    """Wraps `hibari.Hibari`, one model per voice (loaded on first use); a sentence in, 24 kHz float32 out."""

    info = HIBARI_INFO

    def __init__(self, threads: int = 1, folder: Path | None = None) -> None:
        self._threads = threads
        self._folder = folder
        self._voices: dict[str, Any] = {}
        self._guard = threading.Lock()

    def load(self, device: str) -> None:
        try:
            from hibari import Hibari
        except ImportError as exc:  # pragma: no cover - the core always installs it
            raise EngineUnavailable("hibari-tts is not installed: pip install hibari-tts") from exc
        tts = Hibari(voice=DEFAULT_VOICE, threads=self._threads)
        tts.g2p  # noqa: B018 - load the G2P now, not inside the first request
        self._voices = {DEFAULT_VOICE: tts}

    def unload(self) -> None:
        self._voices = {}

    def _voice(self, name: str) -> Any:
        """The model for `name`: the wheel's, or a downloaded one whose checksum matches hibari's registry."""
        with self._guard:
            if name in self._voices:
                return self._voices[name]
            entry = voice_registry().get(name)
            if entry is None or self._folder is None:
                raise EngineUnavailable(f"The embedded engine has no voice '{name}'.")
            path = self._folder / entry["file"]
            if not checksum_ok(path, entry["sha256"]):
                raise EngineUnavailable(
                    f"The embedded voice '{name}' is missing or damaged (checksum mismatch); download it again "
                    "with `tts-studio download hibari` or the Models tab.",
                    code="voice_damaged",
                )
            from hibari import Hibari

            self._voices[name] = Hibari(voice=name, model=str(path), threads=self._threads)
            return self._voices[name]

    def stream(self, request: SynthesisRequest) -> Iterator[AudioChunk]:
        if not self._voices:
            raise EngineUnavailable("The embedded engine is not loaded.")
        tts = self._voice(request.voice)
        seed = request.params.get("seed")
        for samples in tts.stream(request.text, speed=request.speed, seed=seed):
            if len(samples):
                yield AudioChunk(np.asarray(samples, dtype=np.float32), HIBARI_INFO.sample_rate)


def download_voices(settings: Settings, base_url: str | None = None) -> list[str]:
    """Fetch the extra voices that are missing (sha256-checked, atomically renamed into place); returns
    the names fetched. Only ever called because the user asked."""
    from hibari.voices import BASE_URL, download

    folder = voice_dir(settings)
    fetched = []
    for name in extra_voices():
        entry = voice_registry()[name]
        dest = folder / entry["file"]
        if checksum_ok(dest, entry["sha256"]):
            continue
        try:
            download((base_url or BASE_URL) + entry["file"], str(dest), entry["sha256"])
        except RuntimeError as exc:  # hibari reports network and checksum failures this way
            raise EngineUnavailable(str(exc), code="download_failed") from None
        fetched.append(name)
    return fetched


ENGINES = {
    "hibari": (HIBARI_INFO, lambda settings: HibariEngine(settings.hibari_threads, voice_dir(settings))),
}
