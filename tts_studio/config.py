"""Settings: one object, from defaults, `TTS_STUDIO_*` environment variables, `.env`, then CLI flags."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from platformdirs import PlatformDirs
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

APP_NAME = "TTSStudio"
DEFAULT_PORT = 8600

OPENAI_VOICES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "onyx",
    "nova",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)

_DIRS = PlatformDirs(APP_NAME, appauthor=False)


def _default_model_map() -> dict[str, list[str]]:
    # First installed engine wins: a fresh CPU install speaks every id with the embedded engine. Ids extending a
    # key follow it (alias_for): gpt-realtime-2.1, -2 and -1.5 follow gpt-realtime, gpt-audio-1.5 gpt-audio.
    best = ["voxcpm2", "chatterbox-multilingual", "chatterbox", "hibari"]
    fast = ["hibari"]  # the mini ids: low latency on the CPU, as OpenAI's mini models trade quality for speed
    return {
        "tts-1": ["hibari"],
        "tts-1-hd": ["voxcpm2", "chatterbox", "hibari"],
        "gpt-4o-mini-tts": list(best),
        # OpenAI's newer speech comes through the Realtime API and the gpt-audio models (and their dated ids)
        "gpt-realtime": list(best),
        "gpt-realtime-mini": list(fast),
        "gpt-realtime-2.1-mini": list(fast),
        "gpt-audio": list(best),
        "gpt-audio-mini": list(fast),
        "gpt-4o-realtime-preview": list(best),
        "gpt-4o-mini-realtime-preview": list(fast),
        "pocket-tts": ["pocket"],  # the CPU cloning engine by its package's name (the engine id `pocket` works too)
    }


def _default_model_params() -> dict[str, dict[str, Any]]:
    return {"tts-1": {"inference_timesteps": 6}, "tts-1-hd": {"inference_timesteps": 16}}


def _bundled_voices_dir() -> Path | None:
    """The repository's `voices/` folder (bundled clips and the default OpenAI-name map), if present."""
    path = Path(__file__).resolve().parent.parent / "voices"
    return path if (path / "voices.json").exists() else None


class RayEngineOptions(BaseModel):
    """One engine's Ray Serve deployment (`ray_engine_options`); unset values follow the engine's kind."""

    num_cpus: float | None = Field(None, ge=0)  # default: 1 for CPU engines, 0 with a GPU
    num_gpus: float | None = Field(None, ge=0)  # default: 1 for GPU engines
    resources: dict[str, float] = Field(default_factory=dict)  # custom Ray resources a replica needs
    min_replicas: int | None = Field(None, ge=0)  # default: 1 for CPU engines, 0 (scale to zero) for GPU ones
    max_replicas: int = Field(1, ge=1)
    max_ongoing_requests: int | None = Field(None, ge=1)  # streams one replica runs at once (CPU 2, GPU 4)
    max_queued_requests: int = Field(16, ge=-1)  # waiting beyond this: 503 with Retry-After (-1: no limit)
    downscale_to_zero_delay_s: float = Field(300.0, ge=0)  # idle this long: the last replica goes


class Settings(BaseSettings):
    """Every knob of the studio. Environment: `TTS_STUDIO_<NAME>` (nested maps as JSON)."""

    # An empty value (`TTS_STUDIO_WYOMING_PORT=` in .env files and compose templates) means unset.
    model_config = SettingsConfigDict(
        env_prefix="TTS_STUDIO_", env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    host: str = Field("127.0.0.1", description="Address to bind; keep 127.0.0.1 unless you want LAN access.")
    port: int = Field(DEFAULT_PORT, ge=0, le=65535, description="Port; the next free one is used if busy.")
    device: str = Field("auto", description="Device for GPU engines: auto, cuda, cuda:N, mps or cpu.")
    api_key: SecretStr | None = Field(
        None, description="When set, every route but /health requires it (`Authorization: Bearer <key>`); empty: none."
    )
    api_key_file: Path | None = Field(None, description="A file holding the API key (keeps it off the command line).")
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Web origins, besides loopback ones and the studio's own, that may call it from a browser; "
        '["*"] allows every site (unsafe without a key).',
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names, besides loopback ones and the bound host, that it answers to (DNS rebinding guard).",
    )
    max_input_chars: int = Field(4096, ge=1, description="Longest `input` accepted on /v1/audio/speech.")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Largest JSON request body (413 above).")
    max_active_requests: int = Field(16, ge=1, description="Speech requests in flight at once (429 above).")
    max_active_transcriptions: int = Field(
        4, ge=1, description="Transcription requests in flight at once (429 above); Whisper shares the CPU."
    )
    queue_wait_seconds: float = Field(
        60.0, gt=0, description="Longest an interactive request waits for its device (503 + Retry-After beyond)."
    )
    client_stall_seconds: float = Field(
        60.0, gt=0, description="A client that reads nothing this long is dropped (its engine is freed)."
    )
    body_timeout_seconds: float = Field(
        30.0, gt=0, description="A request body that sends nothing this long is answered 408 (connection closed)."
    )
    idle_unload_seconds: float = Field(300.0, description="Unload an engine idle this long; <0 never, 0 at once.")
    model_map: dict[str, list[str]] = Field(
        default_factory=_default_model_map,
        description="OpenAI model id -> engine ids, first installed wins (ids extending a key, as gpt-realtime-2.1 or "
        "dated ids, follow it).",
    )
    cloning_fallback: list[str] = Field(
        default_factory=lambda: ["pocket"],
        description="Engines that speak a cloned (library) voice when the engine an OpenAI id maps to cannot (the "
        "embedded one); first installed wins. [] turns it off.",
    )
    model_params: dict[str, dict[str, Any]] = Field(
        default_factory=_default_model_params,
        description="Default engine parameters per OpenAI model id (used when the engine has them).",
    )
    engine_dirs: dict[str, Path] = Field(
        default_factory=dict, description="Engine id -> local checkpoint folder (instead of the hub cache)."
    )
    allow_downloads: bool = Field(True, description="Download missing engine weights on first use.")
    voxcpm_max_len: int = Field(2000, ge=16, description="Most VoxCPM tokens per text chunk (runaway guard).")
    watermark: bool = Field(True, description="Keep Chatterbox's Perth audio watermark on its output.")
    hf_token: SecretStr | None = Field(
        None,
        description="Hugging Face token for gated weights (pocket-tts cloning); else the one saved on the Models "
        "tab, HF_TOKEN, or the standard token file (`hf auth login`).",
    )
    pocket_quantize: bool = Field(True, description="Run pocket-tts with int8 weights on the CPU (faster, smaller).")
    max_gpu_engines: int = Field(1, ge=1, description="GPU engines kept loaded at once; loading another evicts.")
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
    voice_conversion_model: str = Field(
        "chatterbox-vc",
        description="Engine for /v1/audio/voice-conversion when a request names none: chatterbox-vc (meanflow "
        "decoder, 2 steps) or chatterbox-vc-standard (the normal 10-step decoder).",
    )
    voice_conversion_max_seconds: float = Field(
        600.0, gt=1, description="Longest recording accepted for voice conversion (400 above)."
    )
    auto_transcribe: bool = Field(
        True,
        description="Fill a missing voice transcript with Whisper in the voice's language (others than English "
        "need the multilingual model).",
    )
    whisper_multilingual_model: str = Field(
        "Systran/faster-whisper-small",
        description="faster-whisper repo for languages other than English, fetched only when asked (`tts-studio "
        'download whisper` or the Models tab); engine_dirs["whisper"] may name a local copy instead.',
    )
    hibari_threads: int = Field(1, ge=1, description="CPU threads for the embedded engine.")
    data_dir: Path = Field(_DIRS.user_data_path, description="User data (voices, history).")
    cache_dir: Path = Field(_DIRS.user_cache_path, description="Model downloads and temporary files.")
    log_dir: Path = Field(_DIRS.user_log_path, description="Log files.")
    log_level: str = Field("INFO", description="Logging level.")
    wyoming_port: int | None = Field(
        None, ge=1, le=65535, description="Serve the Wyoming protocol (Home Assistant) on this TCP port; usually 10200."
    )
    wyoming_host: str | None = Field(None, description="Address for the Wyoming server (default: the same as host).")
    wyoming_model: str = Field("tts-1", description="The model Wyoming clients speak with (tts-1: the fast default).")
    wyoming_zeroconf: bool = Field(
        True,
        description="Announce the Wyoming server over zeroconf (mDNS) so Home Assistant discovers it; only when it "
        "listens beyond loopback.",
    )
    chat_upstream: str | None = Field(
        None,
        description="Base URL of an OpenAI-compatible LLM server for /v1/chat/completions, /v1/responses and "
        "/v1/realtime (e.g. http://127.0.0.1:11434/v1 for Ollama).",
    )
    chat_upstream_api_key: SecretStr | None = Field(None, description="API key the chat upstream expects, if any.")
    chat_model: str | None = Field(
        None, description="Chat model for Realtime and the Talk tab (default: the upstream's first model)."
    )
    talk_model: str = Field(
        "tts-1", description="The TTS model that speaks chat replies (Responses with a chat model, Realtime, Talk)."
    )
    chat_timeout_seconds: float = Field(
        120.0, gt=0, description="Longest wait for the chat upstream's next bytes (504 beyond)."
    )
    chat_connect_timeout_seconds: float = Field(5.0, gt=0, description="Longest wait to connect to the chat upstream.")
    project_wer_threshold: float = Field(
        0.25, ge=0, le=1, description="A project take Whisper hears worse than this (and >1 word wrong) is redone."
    )
    project_max_tries: int = Field(3, ge=1, le=10, description="Tries per project line before it is flagged.")
    speech_dictionary: bool = Field(
        False,
        description="Apply the global pronunciation dictionary on /v1/audio/speech too (per request: "
        '"dictionary": true).',
    )
    ray_engines: list[str] = Field(
        ["hibari"], description="Engines deployed on Ray (`serve --ray`), each its own Serve deployment."
    )
    ray_engine_options: dict[str, RayEngineOptions] = Field(
        default_factory=dict,
        description="Per engine on Ray: num_cpus, num_gpus, resources, min/max_replicas, max_ongoing_requests, "
        "max_queued_requests, downscale_to_zero_delay_s (JSON).",
    )
    ray_speech_replicas: int = Field(
        2, ge=1, description="Ingress replicas for /v1/audio/speech on Ray; everything else has one owner replica."
    )
    ray_whisper_replicas: int = Field(1, ge=1, description="Whisper (speech to text) replicas on Ray.")
    enable_ui: bool = Field(True, description="Serve the studio UI at /ui (off: API only, no gradio import).")

    @field_validator("api_key", "chat_upstream", "chat_upstream_api_key", "chat_model", "hf_token", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: Any) -> Any:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if isinstance(raw, str) and not raw.strip() else value

    @model_validator(mode="after")
    def _key_from_file(self) -> Settings:
        if self.api_key is None and self.api_key_file is not None:
            try:
                key = self.api_key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"api_key_file {self.api_key_file} cannot be read: {exc.strerror}") from None
            if key:
                self.api_key = SecretStr(key)
        return self

    @property
    def key(self) -> str | None:
        """The API key in effect, or None when the studio has none."""
        return self.api_key.get_secret_value() if self.api_key is not None else None

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    def alias_for(self, model: str) -> str | None:
        """The model_map key `model` uses: itself, else the longest key it extends with "-..." (dated and
        variant ids: gpt-4o-mini-tts-2025-12-15, gpt-realtime-2.1, tts-1-hd-1106), or None."""
        if model in self.model_map:
            return model
        prefixes = [key for key in self.model_map if model.startswith(f"{key}-")]
        return max(prefixes, key=len) if prefixes else None

    @field_validator("model_map", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the non-None overrides applied (CLI flags), validated again."""
        data = self.model_dump()
        data.update({k: v for k, v in overrides.items() if v is not None})
        return Settings.model_validate(data)


def explain_invalid(error: ValidationError, flags: Mapping[str, str] | None = None) -> str:
    """One line naming each invalid setting (its command-line flag when one set it, else its environment
    variable), the value it got (never a secret's) and what it expects."""
    flags = flags or {}
    problems = []
    for item in error.errors(include_url=False):
        message = " ".join(str(item["msg"]).removeprefix("Value error, ").split())
        name = str(item["loc"][0]) if item["loc"] else None
        field = Settings.model_fields.get(name) if name else None
        if name is None or field is None:
            problems.append(message)
            continue
        where = flags.get(name) or f"{Settings.model_config.get('env_prefix', '')}{name.upper()}"
        secret = field.annotation in (SecretStr, SecretStr | None)
        value = "" if secret or isinstance(item["input"], dict) else f"={str(item['input'])[:60]!r}"
        problems.append(f"{where}{value}: {message}")
    return "invalid setting: " + "; ".join(problems)


def is_loopback_host(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def exposed_without_key(settings: Settings) -> bool:
    """Bound beyond loopback with no API key: anyone on the network can use the studio."""
    return settings.api_key is None and not is_loopback_host(settings.host)


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
