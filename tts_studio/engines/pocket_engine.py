"""pocket-tts (Kyutai): a 100M-parameter model that clones a voice from a few seconds of audio, without a
transcript, faster than real time on a laptop CPU; native streaming at 24 kHz; one model per language.

Its cloning weights (`kyutai/pocket-tts`) are gated on the hub: accept the terms, then give a token. pocket-tts
itself falls back silently to a bundle without cloning; here that is a 503 that says what to do, never a
built-in voice. Importing pocket_tts sets torch's thread count to 1 for the whole process: `import_packages()`
puts it back. A model is not thread-safe: the engine holds its lane for a whole stream (`exclusive_stream`).
Voice states are cached per voice content hash and language, in memory and as safetensors next to the voice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tts_studio.config import Settings
from tts_studio.engines.base import AudioChunk, EngineInfo, ParamSpec, SynthesisRequest, VoiceReference
from tts_studio.engines.hf_token import gated_message, hf_token
from tts_studio.engines.torch_base import VoiceCache, seed_everything
from tts_studio.engines.weights import hub_file, weights_present
from tts_studio.errors import EngineUnavailable, InvalidRequest

log = logging.getLogger(__name__)

ENGINE_ID = "pocket"
CLONING_REPO = "kyutai/pocket-tts"
INSTALL_HINT = "pip install 'tts-studio[pocket]'"
# Language code -> the pocket-tts config that speaks it (pocket_tts/config/<name>.yaml).
LANGUAGES = {
    "en": "english",
    "fr": "french",
    "de": "german",
    "pt": "portuguese",
    "it": "italian",
    "es": "spanish",
    "nl": "dutch",
}
MAX_MODELS = 2  # languages kept loaded at once (each about 400 MB in fp32)

POCKET_INFO = EngineInfo(
    id=ENGINE_ID,
    name="Pocket TTS (CPU cloning)",
    description="Kyutai pocket-tts: clones a voice from a few seconds without a transcript, faster than real "
    "time on a CPU; en, fr, de, pt, it, es, nl. Its cloning weights need a Hugging Face token.",
    sample_rate=24000,
    languages=tuple(LANGUAGES),
    cloning=True,
    streaming=True,
    exclusive_stream=True,  # a model serves one generation at a time
    max_chunk_chars=300,
    # What *Download weights* (`tts-studio download pocket`) fetches ahead, with progress: the English cloning
    # bundle. Loading fetches each language's files at the revisions the package's configs pin (the same blob
    # is not downloaded twice), plus its tokenizer from the open repository.
    weights_repo=CLONING_REPO,
    weights_files=("languages/english/model.safetensors",),
    params=(
        ParamSpec("language", str, None, description="Language code (default: the voice's own)."),
        ParamSpec("temperature", float, None, 0.0, 2.0, "Sampling temperature (default: the model's, 0.3)."),
        ParamSpec("seed", int, None, 0, 2**32 - 1, "Same seed, same audio."),
    ),
)


def import_packages() -> Any:
    """`pocket_tts.TTSModel`, with torch's process-wide thread count as it was before the import."""
    import torch

    threads = torch.get_num_threads()
    try:
        from pocket_tts import TTSModel
    finally:
        torch.set_num_threads(threads)
    return TTSModel


def cloning_ready(settings: Settings) -> bool:
    """Whether pocket-tts may clone here, without the network: a local model (engine_dirs), the English
    cloning weights already downloaded, or a token to fetch them with. False means certainly not (the gated
    repository refuses anonymous downloads): library voices do not list the engine until then."""
    return ENGINE_ID in settings.engine_dirs or weights_present(settings, POCKET_INFO) or hf_token(settings) is not None


def _gate_error(note: str = "") -> EngineUnavailable:
    message = gated_message(CLONING_REPO, "pocket-tts's voice-cloning weights")
    return EngineUnavailable(f"{message} {note}".strip(), code="gated")


def _hf_path(value: str) -> tuple[str, str, str | None]:
    """`hf://owner/repo/path/in/repo@revision` -> (repo, path, revision)."""
    repo_path, _, revision = value.removeprefix("hf://").partition("@")
    owner, repo, filename = repo_path.split("/", 2)
    return f"{owner}/{repo}", filename, revision or None


@dataclass
class _Model:
    """One language's model and its voice states."""

    model: Any
    voices: VoiceCache


class PocketEngine:
    """pocket-tts models, one per language on first use; `stream` speaks one text chunk per call."""

    info = POCKET_INFO

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._tts: Any = None
        self._models: dict[str, _Model] = {}
        self._guard = threading.Lock()

    # -- loading ------------------------------------------------------------------------------
    def load(self, device: str) -> None:
        self._tts = import_packages()
        self._model("en")

    def unload(self) -> None:
        self._models = {}
        self._tts = None

    def _config(self, name: str) -> Path:
        """The YAML to load for config `name`: a local copy (engine_dirs["pocket"] holding <name>.yaml or
        config.yaml), else the package's config with its weights fetched through the studio (with the user's
        token, gated repositories as a 503), written to the cache with local paths."""
        local = self._settings.engine_dirs.get(ENGINE_ID)
        if local is not None:
            for candidate in (Path(local) / f"{name}.yaml", Path(local) / "config.yaml"):
                if candidate.is_file():
                    return candidate
            raise EngineUnavailable(f"No {name}.yaml or config.yaml in {local} (setting engine_dirs['pocket']).")
        import yaml
        from pocket_tts.utils.config import CONFIGS_DIR

        config = yaml.safe_load((CONFIGS_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
        cloning = config.get("weights_path")
        if not isinstance(cloning, str) or not cloning.startswith(f"hf://{CLONING_REPO}/"):
            raise _gate_error()  # no cloning bundle for this language: never the silent fallback
        try:
            config["weights_path"] = str(self._fetch(cloning, "pocket-tts's voice-cloning weights"))
        except EngineUnavailable as exc:
            if exc.code != "gated" and hf_token(self._settings) is None:  # offline or downloads off, and no token:
                raise _gate_error(f"({exc.message})") from None  # the token is needed either way
            raise
        config["weights_path_without_voice_cloning"] = None
        lookup = config["flow_lm"]["lookup_table"]
        if str(lookup["tokenizer_path"]).startswith("hf://"):
            lookup["tokenizer_path"] = str(self._fetch(lookup["tokenizer_path"], "pocket-tts's tokenizer"))
        folder = self._settings.cache_dir / "pocket"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    def _fetch(self, value: str, what: str) -> Path:
        repo, filename, revision = _hf_path(value)
        return hub_file(self._settings, repo, filename, revision, what)

    def _model(self, language: str) -> _Model:
        """The model speaking `language`, loaded on first use (the least recently used goes beyond MAX_MODELS)."""
        if self._tts is None:
            raise EngineUnavailable(f"The engine '{ENGINE_ID}' is not loaded.")
        name = LANGUAGES[language]
        with self._guard:
            if language in self._models:
                self._models[language] = self._models.pop(language)  # most recently used last
                return self._models[language]
            quantize = self._settings.pocket_quantize
            model = self._tts.load_model(config=str(self._config(name)), quantize=quantize)
            if not model.has_voice_cloning:
                raise _gate_error()
            cache_id = f"{ENGINE_ID}-{name}{'-int8' if quantize else ''}"
            entry = _Model(model, VoiceCache(cache_id, self._save_state, self._load_state))
            self._models[language] = entry
            while len(self._models) > MAX_MODELS:
                self._models.pop(next(iter(self._models)))
            log.info("pocket-tts %s loaded (int8: %s)", name, quantize)
            return entry

    # -- voice states ---------------------------------------------------------------------------
    @staticmethod
    def _save_state(state: Any, path: Path) -> None:
        from pocket_tts import export_model_state

        export_model_state(state, path)

    def _load_state(self, path: Path) -> Any:
        from pocket_tts.models.model_state import _import_model_state

        return _import_model_state(path, "cpu")

    def _state(self, entry: _Model, reference: VoiceReference) -> Any:
        def build() -> Any:
            return entry.model.get_state_for_audio_prompt(reference.audio_path, truncate=True)

        return entry.voices.get(reference, build)

    @property
    def encoded(self) -> int:
        """Voice states encoded from audio (not from a cache) since load."""
        return sum(entry.voices.built for entry in self._models.values())

    # -- speaking -------------------------------------------------------------------------------
    def _language(self, request: SynthesisRequest) -> str:
        asked = request.params.get("language")
        if asked is not None:
            code = str(asked).split("-")[0].lower()
            if code not in LANGUAGES:
                raise InvalidRequest(f"'language' must be one of {', '.join(LANGUAGES)}.", param="language")
            return code
        code = request.language.split("-")[0].lower()
        return code if code in LANGUAGES else "en"

    def stream(self, request: SynthesisRequest) -> Iterator[AudioChunk]:
        reference = request.reference
        if reference is None:
            raise InvalidRequest(f"'{ENGINE_ID}' speaks cloned voices only: choose a library voice.", param="voice")
        entry = self._model(self._language(request))
        state = self._state(entry, reference)
        model = entry.model
        seed_everything(request.params.get("seed"))
        temperature = request.params.get("temperature")
        model.temp = temperature if temperature is not None else model.config.default_temperature
        stop = threading.Event()
        chunks = model.generate_audio_stream(state, request.text, stop=stop, copy_state=True)
        try:
            for chunk in chunks:
                yield AudioChunk(chunk.detach().float().cpu().numpy(), int(model.sample_rate))
        finally:
            stop.set()  # its generation thread stops after the current frame
            chunks.close()


ENGINES = {ENGINE_ID: (POCKET_INFO, PocketEngine)}
