"""Settings: one object, from defaults, `TTS_STUDIO_*` environment variables, `.env`, then CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from platformdirs import PlatformDirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

APP_NAME = "TTSStudio"
DEFAULT_PORT = 8600

OPENAI_VOICES = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx",
    "nova", "sage", "shimmer", "verse", "marin", "cedar",
)  # fmt: skip

_DIRS = PlatformDirs(APP_NAME, appauthor=False)


def _default_model_map() -> dict[str, str]:
    return {"tts-1": "hibari", "tts-1-hd": "hibari", "gpt-4o-mini-tts": "hibari"}


def _bundled_voices_dir() -> Path | None:
    """The repository's `voices/` folder (bundled clips and the default OpenAI-name map), if present."""
    path = Path(__file__).resolve().parent.parent / "voices"
    return path if (path / "voices.json").exists() else None


class Settings(BaseSettings):
    """Every knob of the studio. Environment: `TTS_STUDIO_<NAME>` (nested maps as JSON)."""

    model_config = SettingsConfigDict(
        env_prefix="TTS_STUDIO_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    host: str = Field("127.0.0.1", description="Address to bind; keep 127.0.0.1 unless you want LAN access.")
    port: int = Field(DEFAULT_PORT, ge=0, le=65535, description="Port; the next free one is used if busy.")
    device: str = Field("auto", description="Device for GPU engines: auto, cuda, cuda:N, mps or cpu.")
    api_key: SecretStr | None = Field(None, description="When set, /v1 routes require `Authorization: Bearer <key>`.")
    cors_origins: list[str] = Field(["*"], description="Origins allowed by CORS; [] turns CORS off.")
    max_input_chars: int = Field(4096, ge=1, description="Longest `input` accepted on /v1/audio/speech.")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Largest JSON request body (413 above).")
    max_active_requests: int = Field(16, ge=1, description="Speech requests in flight at once (429 above).")
    idle_unload_seconds: float = Field(300.0, description="Unload an engine idle this long; <0 never, 0 at once.")
    model_map: dict[str, str] = Field(
        default_factory=_default_model_map,
        description="OpenAI model id -> engine id (dated gpt-4o-mini-tts-* ids follow gpt-4o-mini-tts).",
    )
    voice_map: dict[str, str] = Field(
        default_factory=dict,
        description="Fixed OpenAI voice name -> voice id overrides (above the bundled and user mappings).",
    )
    bundled_voices_dir: Path | None = Field(
        default_factory=_bundled_voices_dir, description="Bundled voices and default OpenAI-name map."
    )
    voice_max_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Largest voice upload (413 above).")
    voice_max_seconds: float = Field(120.0, gt=1, description="Longest reference clip accepted (5-30 s is best).")
    voice_url_enabled: bool = Field(
        False, description="Allow `voice_url` on /v1/audio/speech (public http(s) only; SSRF-guarded)."
    )
    auto_transcribe: bool = Field(True, description="Fill a missing voice transcript with Whisper tiny.en.")
    hibari_threads: int = Field(1, ge=1, description="CPU threads for the embedded engine.")
    data_dir: Path = Field(_DIRS.user_data_path, description="User data (voices, history).")
    cache_dir: Path = Field(_DIRS.user_cache_path, description="Model downloads and temporary files.")
    log_dir: Path = Field(_DIRS.user_log_path, description="Log files.")
    log_level: str = Field("INFO", description="Logging level.")

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    def engine_for_model(self, model: str) -> str | None:
        """Engine id for an OpenAI or engine model id, or None when unknown."""
        if model in self.model_map:
            return self.model_map[model]
        if model.startswith("gpt-4o-mini-tts-") and "gpt-4o-mini-tts" in self.model_map:
            return self.model_map["gpt-4o-mini-tts"]
        return None

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the non-None overrides applied (CLI flags), validated again."""
        data = self.model_dump()
        data.update({k: v for k, v in overrides.items() if v is not None})
        return Settings.model_validate(data)


def settings_table() -> str:
    """The README's settings table, generated from the fields (a test keeps the README in sync)."""
    rows = ["| Setting | Environment variable | Default | Description |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, Path):
            default = "repo voices/" if name == "bundled_voices_dir" else "per-OS user dir"
        shown = f"`{default}`" if not isinstance(default, dict) else "see `config.py`"
        env = f"`TTS_STUDIO_{name.upper()}`"
        rows.append(f"| `{name}` | {env} | {shown} | {field.description or ''} |")
    return "\n".join(rows)
