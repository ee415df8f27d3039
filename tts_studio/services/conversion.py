"""Voice conversion as a speech plan: a recording, re-voiced into a library voice by a conversion engine
(`EngineInfo.converts_audio`). The plan runs as any speech job does (admission, lease, streaming, cleanup);
its one piece of "text" is the recording, carried as `SpeechPlan.source`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tts_studio.audio.decode import AudioLimits, decode_audio
from tts_studio.engines.base import AudioChunk
from tts_studio.errors import EngineUnavailable, InvalidRequest
from tts_studio.services.plan import SpeechPlan
from tts_studio.services.speech import SpeechService
from tts_studio.services.transcription import UPLOAD_LIMITS

INSTALL_HINT = (
    "Voice conversion needs the Chatterbox engine package: install it on the Models tab, or run "
    "pip install 'tts-studio[chatterbox]' (./start.sh --engines chatterbox), then restart the studio."
)
MIN_SECONDS = 0.5


@dataclass(frozen=True)
class ConversionOrder:
    """A recording (any format the uploads accept) to re-voice into `voice`."""

    audio: bytes
    voice: str
    model: str | None = None  # a conversion engine id; None (or an ElevenLabs id): the voice_conversion_model
    extra: dict[str, Any] = field(default_factory=dict)  # engine parameters (`steps`)
    param: str = "audio"  # the field the recording came in, for error messages


def conversion_engine(speech: SpeechService, model: str | None) -> str:
    """The conversion engine for `model`, or a 4xx/503 saying why there is none."""
    if model is None or model.startswith("eleven_"):  # ElevenLabs' speech-to-speech model ids
        model = speech.settings.voice_conversion_model
    engine_id, _ = speech.resolve_model(model)
    if not speech.manager.info(engine_id).converts_audio:
        converters = [e for e in speech.manager.engine_ids if speech.manager.info(e).converts_audio]
        raise InvalidRequest(
            f"The model '{model}' speaks text; it does not convert voices. Conversion models: {', '.join(converters)}.",
            param="model",
            code="model_not_supported",
        )
    return engine_id


def plan_conversion(speech: SpeechService, order: ConversionOrder) -> SpeechPlan:
    """Validate everything that can be checked without loading the engine (blocking: it decodes)."""
    engine_id = conversion_engine(speech, order.model)
    info = speech.manager.info(engine_id)
    voice = speech.voices.resolve(order.voice, info)
    if voice.reference is None:  # an engine's own voice: nothing to convert into
        raise InvalidRequest(f"The voice '{order.voice}' has no reference audio to convert into.", param="voice")
    limits = AudioLimits(UPLOAD_LIMITS.max_bytes, MIN_SECONDS, speech.settings.voice_conversion_max_seconds)
    audio = decode_audio(order.audio, limits, param=order.param)
    params = info.validate_params(order.extra)
    if not speech.manager.installed(engine_id):
        raise EngineUnavailable(INSTALL_HINT, code="engine_not_installed")
    return SpeechPlan(
        engine_id=engine_id,
        info=info,
        voice=voice,
        chunks=(f"{audio.duration:.1f} s of audio",),  # one piece; the engine splits it at silences
        native_speed=1.0,
        tempo=1.0,
        params=params,
        instructions=None,
        input_chars=0,
        language=voice.reference.language,
        source=AudioChunk(audio.samples, audio.sample_rate),
    )
