"""A `/v1/realtime` session's configuration: the session object, and `session.update` read (every field checked
before any is applied) and applied. Fields the studio has no use for (`reasoning`, `parallel_tool_calls`,
`tools`, transcription `delay`) are accepted and ignored, as the 2026 SDK sends them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tts_studio.errors import StudioError

RATE = 24_000
SPEED_RANGE = (0.25, 4.0)
PCM_ONLY = "Only 24 kHz pcm16 audio ({'type': 'audio/pcm', 'rate': 24000}) is supported."
DEFAULT_LANGUAGE = "en"
MAX_LANGUAGE_CHARS = 16  # ISO-639-1 codes are two letters; leave room for region tags
MAX_KEYWORDS, MAX_KEYWORD_CHARS = 100, 64  # words to listen for, at most, each at most so long
MAX_PROMPT_CHARS = 4096
TRANSCRIPTION_FIELDS = ("model", "language", "prompt")


class EventError(Exception):
    """A client event that cannot be served: answered with an `error` event, the session goes on."""

    def __init__(self, message: str, code: str = "invalid_value", param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.param = message, code, param


def object_of(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def max_tokens(value: Any, param: str) -> int | str:
    if value == "inf":
        return "inf"
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4096:
        return value
    raise EventError("'max_output_tokens' must be 1-4096 or 'inf'.", param=param)


def speed(value: Any) -> float:
    low, high = SPEED_RANGE
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise EventError(f"'speed' must be a number from {low} to {high}.", param="session.audio.output.speed")
    return float(value)  # NaN and infinities fail the range check above


def new_session(session_id: str, model: str) -> dict[str, Any]:
    """The session object as `session.created` sends it (the GA shape; realtime_beta reshapes it)."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "",
        "max_output_tokens": "inf",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": RATE},
                "turn_detection": None,
                "transcription": {"model": "whisper-1", "language": DEFAULT_LANGUAGE},
            },
            "output": {"format": {"type": "audio/pcm", "rate": RATE}, "voice": "alloy", "speed": 1.0},
        },
    }


@dataclass
class SessionChange:
    """What one `session.update` changes (None: left as it is)."""

    instructions: str | None = None
    max_output_tokens: int | str | None = None
    output_modalities: list[str] | None = None
    voice: str | None = None
    speed: float | None = None
    transcription: dict[str, Any] | None = None  # model, language, prompt: merged into the session's


def _transcription(value: Any) -> dict[str, Any] | None:
    """The transcription settings an update sets. Null (OpenAI: no transcription) is ignored: the studio needs
    the transcript to answer. `keywords` bias recognition (Whisper's hotwords), `languages` is a hint; `delay` is
    accepted and ignored; other shapes of `keywords`/`languages` are ignored too."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise EventError("'transcription' must be an object.", param="session.audio.input.transcription")
    change: dict[str, Any] = {}
    if "model" in value:
        if not isinstance(value["model"], str) or not value["model"]:
            raise EventError("'model' must be a model id.", param="session.audio.input.transcription.model")
        change["model"] = value["model"]
    if "language" in value:  # null: the transcriber's default (English until it can detect)
        language = value["language"]
        if language is not None and (
            not isinstance(language, str) or not 0 < len(language) <= MAX_LANGUAGE_CHARS or not language.isascii()
        ):
            raise EventError(
                "'language' must be an ISO-639-1 code such as 'en'.",
                param="session.audio.input.transcription.language",
            )
        change["language"] = language.lower() if language is not None else None
    if "prompt" in value:
        prompt = value["prompt"]
        if prompt is not None and (not isinstance(prompt, str) or len(prompt) > MAX_PROMPT_CHARS):
            raise EventError(
                f"'prompt' must be text of at most {MAX_PROMPT_CHARS} characters.",
                param="session.audio.input.transcription.prompt",
            )
        change["prompt"] = prompt
    keywords = value.get("keywords")  # words to listen for: Whisper's hotwords
    if isinstance(keywords, list) and all(isinstance(word, str) for word in keywords):
        change["keywords"] = [word[:MAX_KEYWORD_CHARS] for word in keywords[:MAX_KEYWORDS]]
    languages = value.get("languages")  # a hint: the languages the speaker may use
    if isinstance(languages, list) and all(isinstance(code, str) and code.isascii() for code in languages):
        change["languages"] = [code.lower() for code in languages if 0 < len(code) <= MAX_LANGUAGE_CHARS]
    return change


def read_update(update: Any) -> SessionChange:
    """Check a `session.update`'s `session` (GA and beta spellings); raises EventError, changes nothing."""
    if not isinstance(update, dict):
        raise EventError("'session' must be an object.", param="session")
    change = SessionChange()
    if isinstance(update.get("instructions"), str):
        change.instructions = update["instructions"]
    for key in ("max_output_tokens", "max_response_output_tokens"):  # GA and beta spellings
        if key in update:
            change.max_output_tokens = max_tokens(update[key], f"session.{key}")
    modalities = update.get("output_modalities", update.get("modalities"))  # GA and beta spellings
    if isinstance(modalities, list):
        change.output_modalities = ["audio"] if "audio" in modalities else ["text"]
    audio = object_of(update.get("audio"))
    out, into = object_of(audio.get("output")), object_of(audio.get("input"))
    voice = out.get("voice", update.get("voice"))
    voice = voice.get("id") if isinstance(voice, dict) else voice
    if voice is not None:
        if not isinstance(voice, str) or not voice:
            raise EventError("'voice' must be a voice name or id.", param="session.audio.output.voice")
        change.voice = voice
    given_speed = out.get("speed", update.get("speed"))
    change.speed = speed(given_speed) if given_speed is not None else None
    for fmt in (out.get("format"), into.get("format")):
        if isinstance(fmt, dict) and (fmt.get("type") != "audio/pcm" or fmt.get("rate", RATE) != RATE):
            raise EventError(PCM_ONLY, "unsupported_format", "session.audio.format")
    for key in ("output_audio_format", "input_audio_format"):  # the beta spelling
        if update.get(key, "pcm16") != "pcm16":
            raise EventError(PCM_ONLY, "unsupported_format", f"session.{key}")
    change.transcription = _transcription(into.get("transcription", update.get("input_audio_transcription")))
    return change


def apply_update(session: dict[str, Any], change: SessionChange) -> None:
    """Apply a checked change to the session object."""
    if change.instructions is not None:
        session["instructions"] = change.instructions
    if change.max_output_tokens is not None:
        session["max_output_tokens"] = change.max_output_tokens
    if change.output_modalities is not None:
        session["output_modalities"] = change.output_modalities
    output = session["audio"]["output"]
    if change.voice is not None:
        output["voice"] = change.voice
    if change.speed is not None:
        output["speed"] = change.speed
    if change.transcription:
        merged = {**session["audio"]["input"]["transcription"], **change.transcription}
        session["audio"]["input"]["transcription"] = {k: v for k, v in merged.items() if v is not None or k != "prompt"}


def transcription_failure(exc: StudioError) -> EventError:
    """The `error` event for input audio the transcriber refused, its param named as the session names it."""
    param = f"session.audio.input.transcription.{exc.param}" if exc.param in TRANSCRIPTION_FIELDS else exc.param
    return EventError(exc.message, exc.code or "transcription_failed", param)
