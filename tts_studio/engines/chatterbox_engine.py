"""Chatterbox (Resemble AI): English, multilingual (23 languages) and Turbo; voice cloning on GPU.

Weights come from the Hugging Face hub into the user cache on first use (or `engine_dirs`). Cloning
conditionals are cached per voice content hash (`Conditionals.save`), so a voice is encoded once.
Chatterbox has no native streaming: the service streams it sentence chunk by sentence chunk.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tts_studio.config import Settings
from tts_studio.engines.base import AudioChunk, EngineInfo, ParamSpec, SynthesisRequest, VoiceReference
from tts_studio.engines.torch_base import TorchEngine
from tts_studio.errors import InvalidRequest

log = logging.getLogger(__name__)

MTL_LANGUAGES = (
    "ar",
    "da",
    "de",
    "el",
    "en",
    "es",
    "fi",
    "fr",
    "he",
    "hi",
    "it",
    "ja",
    "ko",
    "ms",
    "nl",
    "no",
    "pl",
    "pt",
    "ru",
    "sv",
    "sw",
    "tr",
    "zh",
)
_SEED = ParamSpec("seed", int, None, 0, 2**32 - 1, "Same seed, same audio.")
_SAMPLING = (
    ParamSpec("temperature", float, 0.8, 0.05, 5.0, "Sampling temperature."),
    ParamSpec("repetition_penalty", float, 1.2, 1.0, 3.0, "Penalty for repeated speech tokens."),
    ParamSpec("min_p", float, 0.05, 0.0, 1.0, "Min-p sampling."),
    ParamSpec("top_p", float, 1.0, 0.0, 1.0, "Top-p sampling."),
)
_EXPRESSIVE = (
    ParamSpec("exaggeration", float, 0.5, 0.0, 2.0, "Emotion intensity (0.5 neutral)."),
    ParamSpec("cfg_weight", float, 0.5, 0.0, 1.0, "Classifier-free guidance; lower is slower, calmer speech."),
)
_COMMON: dict[str, Any] = {
    "sample_rate": 24000,
    "cloning": True,
    "gpu": True,
    "streaming": True,
    "max_chunk_chars": 300,
}

CHATTERBOX_INFO = EngineInfo(
    id="chatterbox",
    name="Chatterbox",
    description="Resemble AI Chatterbox (English), voice cloning.",
    languages=("en",),
    weights_repo="ResembleAI/chatterbox",
    weights_files=("ve.safetensors", "t3_cfg.safetensors", "s3gen.safetensors", "tokenizer.json", "conds.pt"),
    params=(*_EXPRESSIVE, *_SAMPLING, _SEED),
    **_COMMON,
)
CHATTERBOX_MULTILINGUAL_INFO = EngineInfo(
    id="chatterbox-multilingual",
    name="Chatterbox Multilingual",
    description="Resemble AI Chatterbox in 23 languages (`language` parameter), voice cloning.",
    languages=MTL_LANGUAGES,
    weights_repo="ResembleAI/chatterbox",
    weights_files=(
        "ve.pt",
        "t3_mtl23ls_v2.safetensors",
        "s3gen.pt",
        "grapheme_mtl_merged_expanded_v1.json",
        "conds.pt",
        "Cangjie5_TC.json",
    ),
    params=(
        ParamSpec("language", str, "en", description="Language code."),
        *_EXPRESSIVE,
        ParamSpec("temperature", float, 0.8, 0.05, 5.0),
        ParamSpec("repetition_penalty", float, 2.0, 1.0, 3.0),
        ParamSpec("min_p", float, 0.05, 0.0, 1.0),
        ParamSpec("top_p", float, 1.0, 0.0, 1.0),
        _SEED,
    ),
    **_COMMON,
)
CHATTERBOX_TURBO_INFO = EngineInfo(
    id="chatterbox-turbo",
    name="Chatterbox Turbo",
    description="Resemble AI Chatterbox Turbo (English, fast; needs a reference over 5 s).",
    languages=("en",),
    weights_repo="ResembleAI/chatterbox-turbo",
    weights_files=("*.safetensors", "*.json", "*.txt", "*.pt", "*.model"),
    params=(
        ParamSpec("temperature", float, 0.8, 0.05, 5.0),
        ParamSpec("repetition_penalty", float, 1.2, 1.0, 3.0),
        ParamSpec("top_p", float, 0.95, 0.0, 1.0),
        ParamSpec("top_k", int, 1000, 1, 10000),
        _SEED,
    ),
    **_COMMON,
)


@dataclass(frozen=True)
class Variant:
    """One Chatterbox model, as data: its package class and what it needs."""

    info: EngineInfo
    module: str
    cls: str
    min_reference_seconds: float = 0.0  # Turbo needs a clip longer than 5 s
    language_param: bool = False  # the multilingual model takes `language` (as language_id)
    offline_tokenizer: bool = False  # its tokenizer fetches a file that the weights already hold


VARIANTS = {
    v.info.id: v
    for v in (
        Variant(CHATTERBOX_INFO, "chatterbox.tts", "ChatterboxTTS"),
        Variant(
            CHATTERBOX_MULTILINGUAL_INFO,
            "chatterbox.mtl_tts",
            "ChatterboxMultilingualTTS",
            language_param=True,
            offline_tokenizer=True,
        ),
        Variant(CHATTERBOX_TURBO_INFO, "chatterbox.tts_turbo", "ChatterboxTurboTTS", min_reference_seconds=5.0),
    )
}


def _chinese_segmenter_ready() -> bool:
    """spacy_pkuseg downloads its model on first use and raises offline; see whether it works here."""
    try:
        from spacy_pkuseg import pkuseg

        pkuseg()
        return True
    except Exception:
        return False


@contextmanager
def _offline_chinese(folder: Path) -> Iterator[None]:
    """Load the multilingual model without the network once its weights are cached.

    Its tokenizer fetches Cangjie5_TC.json from the hub at every load (retrying for half a minute
    offline) although the file is part of the downloaded weights: serve it from `folder` instead. The
    Chinese word segmenter downloads a model on first use: without one, load without it.
    """
    import chatterbox.models.tokenizers.tokenizer as tokenizer_module

    def local_file(repo_id: str, filename: str, **_: Any) -> str:
        path = folder / filename
        if not path.exists():
            raise FileNotFoundError(f"{filename} is not in {folder}")
        return str(path)

    hub_download = tokenizer_module.hf_hub_download
    segmenter = sys.modules.get("spacy_pkuseg")
    blocked = not _chinese_segmenter_ready()
    if blocked:
        log.warning("Chinese word segmentation is unavailable (spacy_pkuseg has no model offline).")
        sys.modules["spacy_pkuseg"] = None  # type: ignore[assignment]  # makes its import fail: skipped
    tokenizer_module.hf_hub_download = local_file
    try:
        yield
    finally:
        tokenizer_module.hf_hub_download = hub_download
        if blocked:
            if segmenter is None:
                sys.modules.pop("spacy_pkuseg", None)
            else:
                sys.modules["spacy_pkuseg"] = segmenter


class ChatterboxEngine(TorchEngine):
    """One Chatterbox model; `stream` speaks one text chunk per call with the request's conditionals."""

    def __init__(self, variant: Variant, settings: Settings) -> None:
        super().__init__(variant.info, settings)
        self.variant = variant
        self._module: Any = None

    def _load_model(self, folder: Path, device: str) -> Any:
        module = self._module = importlib.import_module(self.variant.module)
        offline = _offline_chinese(folder) if self.variant.offline_tokenizer else nullcontext()
        with offline:
            model = getattr(module, self.variant.cls).from_local(folder, device)
        if not self._settings.watermark:
            import perth

            model.watermarker = perth.DummyWatermarker()
            log.warning("Chatterbox watermarking is off (setting watermark).")
        return model

    def _save_voice(self, value: Any, path: Path) -> None:
        value.save(path)

    def _load_voice(self, path: Path) -> Any:
        return self._module.Conditionals.load(path, map_location="cpu").to(self._device)

    def _conditionals(self, reference: VoiceReference, exaggeration: float) -> Any:
        """The voice's Conditionals: memory, then the on-disk cache, then encoded from the audio once."""
        model = self._model

        def build() -> Any:
            model.prepare_conditionals(str(reference.audio_path), exaggeration=exaggeration)
            return model.conds

        return self._voices.get(reference, build)

    def stream(self, request: SynthesisRequest) -> Iterator[AudioChunk]:
        model = self._loaded()
        params = self._params(request)
        reference = request.reference
        if reference is not None:
            if reference.duration <= self.variant.min_reference_seconds:
                raise InvalidRequest(
                    f"{self.info.name} needs a reference clip longer than {self.variant.min_reference_seconds:g} s; "
                    f"this one is {reference.duration:.1f} s.",
                    param="voice",
                )
            model.conds = self._conditionals(reference, params.get("exaggeration", 0.5))
        elif model.conds is None:
            raise InvalidRequest(f"The engine '{self.info.id}' needs a voice to clone.", param="voice")
        if self.variant.language_param:
            params.pop("language")
            asked = request.params.get("language")
            if asked is not None and asked not in MTL_LANGUAGES:
                raise InvalidRequest(f"'language' must be one of {', '.join(MTL_LANGUAGES)}.", param="language")
            voice_language = request.language.split("-")[0].lower()  # the voice's own language, e.g. pt-BR -> pt
            params["language_id"] = asked or (voice_language if voice_language in MTL_LANGUAGES else "en")
        with self._guarded():
            wav = model.generate(request.text, **params)
        yield AudioChunk(wav.squeeze(0).detach().cpu().numpy().astype("float32"), model.sr)


ENGINES = {eid: (v.info, lambda settings, v=v: ChatterboxEngine(v, settings)) for eid, v in VARIANTS.items()}
