"""Speech synthesis as a service: resolve the model, validate and plan a request. Speaking a plan is a speech
job (services/job.py), the one way in for every caller."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterable
from typing import Any

from tts_studio.audio.decode import DecodedAudio, decode_audio
from tts_studio.config import Settings
from tts_studio.engines.base import EngineInfo
from tts_studio.engines.manager import ModelManager
from tts_studio.errors import EngineUnavailable, InvalidRequest, ModelNotFound, StudioError
from tts_studio.services.fetch import fetch_audio
from tts_studio.services.plan import SpeechOrder, SpeechPlan
from tts_studio.services.text_feed import TextFeed
from tts_studio.services.voices import ResolvedVoice, VoiceCatalog
from tts_studio.text import chunk_text

__all__ = ["SpeechOrder", "SpeechPlan", "SpeechService", "split_speed"]

log = logging.getLogger(__name__)

SPEED_MIN, SPEED_MAX = 0.25, 4.0


def split_speed(speed: float, native: tuple[float, float] | None) -> tuple[float, float]:
    """(engine speed, residual tempo): engine-native within its range, time-stretch for the rest."""
    if native is None:
        return 1.0, speed
    low, high = native
    engine_speed = min(max(speed, low), high)
    return engine_speed, speed / engine_speed


class SpeechService:
    """Turns orders into audio; used in-process by the API routes and the UI alike."""

    def __init__(self, manager: ModelManager, voices: VoiceCatalog, settings: Settings) -> None:
        self.manager = manager
        self.voices = voices
        self.settings = settings

    def resolve_model(self, model: str, voice: str | None = None) -> tuple[str, dict[str, Any]]:
        """(engine id, default parameters) for an OpenAI model id or an engine id. With `voice`, an OpenAI id
        whose engine cannot speak it (a cloned voice on the embedded engine) takes the first installed engine
        of `cloning_fallback` that can (pocket-tts on a CPU)."""
        alias = self.settings.alias_for(model)
        if alias is None:
            if model in self.manager.engine_ids:
                return model, {}
            raise ModelNotFound(f"The model '{model}' does not exist.", param="model")
        candidates = self.settings.model_map[alias]
        for engine_id in candidates:
            if engine_id in self.manager.engine_ids and self.manager.installed(engine_id):
                defaults = dict(self.settings.model_params.get(alias, {}))
                if voice is not None and not self._can_speak(engine_id, voice):
                    for fallback in self.settings.cloning_fallback:
                        if self._can_speak(fallback, voice):
                            return fallback, defaults
                return engine_id, defaults
        hints = dict.fromkeys(self.manager.install_hint(e) for e in candidates if e in self.manager.engine_ids)
        how = f" Install one with: {' or '.join(h for h in hints if h)}." if any(hints) else ""
        raise EngineUnavailable(
            f"No engine for '{model}' is installed (it maps to: {', '.join(candidates)}).{how}", param="model"
        )

    def _can_speak(self, engine_id: str, voice: str) -> bool:
        if engine_id not in self.manager.engine_ids or not self.manager.installed(engine_id):
            return False
        try:
            self.voices.resolve(voice, self.manager.info(engine_id))
        except InvalidRequest:
            return False
        return True

    def served_models(self) -> list[tuple[str, str]]:
        """(model id, engine id) for every id a client may ask for: the OpenAI aliases an installed engine
        serves, then the installed engines by their own ids. The one place model ids are listed."""
        served: list[tuple[str, str]] = []
        for alias in self.settings.model_map:
            try:
                served.append((alias, self.resolve_model(alias)[0]))
            except StudioError:
                continue
        served += [
            (eid, eid)
            for eid in self.manager.engine_ids
            if self.manager.installed(eid) and not self.manager.info(eid).converts_audio  # no text to speak
        ]
        return served

    def plan(self, order: SpeechOrder) -> SpeechPlan:
        """Validate everything that can be checked without loading the engine."""
        engine_id, defaults = self.resolve_model(order.model, self._voice_of(order))
        info = self.manager.info(engine_id)
        limit = self.settings.max_input_chars
        if not order.input.strip():
            raise InvalidRequest("'input' must not be empty.", param="input", code="empty_string")
        if len(order.input) > limit:
            raise InvalidRequest(
                f"'input' is {len(order.input)} characters long; the limit is {limit}.",
                param="input",
                code="string_above_max_length",
            )
        chunks = chunk_text(order.input, max_chars=info.max_chunk_chars)
        if not chunks:
            raise InvalidRequest("'input' has nothing to speak.", param="input")
        return self._plan(order, engine_id, defaults, tuple(chunks))

    def plan_feed(self, order: SpeechOrder, feed: TextFeed) -> SpeechPlan:
        """A plan whose text arrives while it is spoken (an LLM's reply): its chunks come from `feed`."""
        engine_id, defaults = self.resolve_model(order.model, self._voice_of(order))
        feed.max_chars = self.manager.info(engine_id).max_chunk_chars
        return self._plan(order, engine_id, defaults, feed)

    @staticmethod
    def _voice_of(order: SpeechOrder) -> str | None:
        """The library or named voice that picks the engine (None for a voice sent inline)."""
        return order.voice if order.voice_b64 is None and order.voice_url is None else None

    def _plan(self, order: SpeechOrder, engine_id: str, defaults: dict[str, Any], chunks: Iterable[str]) -> SpeechPlan:
        info = self.manager.info(engine_id)
        if info.converts_audio:
            raise InvalidRequest(
                f"The model '{order.model}' converts recordings; send them to POST /v1/audio/voice-conversion.",
                param="model",
                code="model_not_supported",
            )
        if not SPEED_MIN <= order.speed <= SPEED_MAX:
            raise InvalidRequest(
                f"'speed' must be between {SPEED_MIN} and {SPEED_MAX}, got {order.speed}.", param="speed"
            )
        inline = self._inline_audio(order, info)
        voice = ResolvedVoice("inline") if inline is not None else self.voices.resolve(order.voice, info)
        native_speed, tempo = split_speed(order.speed, info.speed_range)
        return SpeechPlan(
            engine_id=engine_id,
            info=info,
            voice=voice,
            chunks=chunks,
            native_speed=native_speed,
            tempo=tempo,
            params=info.validate_params({**defaults, **order.extra}),
            instructions=order.instructions if info.instructions else None,
            input_chars=len(order.input),
            language=voice.reference.language if voice.reference is not None else info.languages[0],
            inline_audio=inline,
            temp_root=self.settings.cache_dir / "tmp",
        )

    def _inline_audio(self, order: SpeechOrder, info: EngineInfo) -> DecodedAudio | None:
        """Decode `voice_b64` / `voice_url` (validated like an upload), or None when neither is given."""
        if order.voice_b64 is None and order.voice_url is None:
            return None
        param = "voice_b64" if order.voice_b64 is not None else "voice_url"
        if not info.cloning:
            cloning = [e for e in self.manager.engine_ids if self.manager.info(e).cloning]
            can = ", ".join(cloning) or "none installed (a cloning engine such as chatterbox or voxcpm is needed)"
            raise InvalidRequest(
                f"'{param}' clones a voice, which the engine '{info.id}' cannot do. Engines that can: {can}.",
                param=param,
                code="voice_not_supported",
            )
        limits = self.voices.library.limits
        if order.voice_b64 is not None:
            try:
                data = base64.b64decode(order.voice_b64.split(",", 1)[-1], validate=True)
            except (binascii.Error, ValueError):
                raise InvalidRequest("'voice_b64' is not valid base64.", param=param) from None
        else:
            if not self.settings.voice_url_enabled:
                raise InvalidRequest(
                    "'voice_url' is disabled on this server (setting voice_url_enabled).",
                    param=param,
                    code="voice_url_disabled",
                )
            assert order.voice_url is not None
            data = fetch_audio(order.voice_url, limits.max_bytes)
        return decode_audio(data, limits, param=param)
