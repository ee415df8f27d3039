"""Request bodies of the OpenAI-compatible routes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tts_studio.audio.encode import FORMATS

MIN_RATE, MAX_RATE = 8_000, 48_000


class VoiceRef(BaseModel):
    """A custom voice by id: `{"id": "voice_..."}`."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1)


class SpeechBody(BaseModel):
    """`POST /v1/audio/speech`. Unknown keys are kept: engines pick their parameters (`seed`, ...)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str
    voice: str | VoiceRef
    instructions: str | None = Field(None, max_length=4096)
    response_format: str = Field("mp3", json_schema_extra={"enum": list(FORMATS)})
    speed: float = 1.0
    stream_format: Literal["audio", "sse"] = "audio"
    voice_b64: str | None = Field(None, description="Clone from inline base64 audio (cloning engines).")
    voice_url: str | None = Field(None, description="Clone from audio at a public URL (if enabled).")
    stream: bool | None = Field(None, description="Accepted for Chatterbox-style clients; audio always streams.")
    dictionary: bool | None = Field(None, description="Apply the global pronunciation dictionary (default: setting).")
    sample_rate: int | None = Field(
        None, ge=MIN_RATE, le=MAX_RATE, description="Output rate for pcm and wav (resampled); default 24000."
    )

    @field_validator("response_format", "stream_format", "speed", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info: Any) -> Any:
        if value is None:
            return cls.model_fields[info.field_name].default
        return value

    @field_validator("response_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in FORMATS:
            raise ValueError(f"must be one of {', '.join(FORMATS)}")
        return value

    @property
    def voice_id(self) -> str:
        return self.voice.id if isinstance(self.voice, VoiceRef) else self.voice

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self.model_extra or {})
