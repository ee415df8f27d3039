"""VoxCPM (OpenBMB): VoxCPM2 (48 kHz, style control through `instructions`) and VoxCPM 1.5; native streaming.

Weights come from the Hugging Face hub into the user cache on first use (or `engine_dirs`). Cloning
prompt caches (`build_prompt_cache`) are stored per voice content hash, so a voice is encoded once.
The model keeps a static KV cache, so a stream holds the device for its whole length. The voice
`default` speaks without a reference (VoxCPM2: shaped by `instructions`).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tts_studio.config import Settings
from tts_studio.engines.base import AudioChunk, EngineInfo, ParamSpec, SynthesisRequest, VoiceReference
from tts_studio.engines.torch_base import TorchEngine
from tts_studio.errors import InvalidRequest

log = logging.getLogger(__name__)

_PARAMS = (
    ParamSpec("cfg_value", float, 2.0, 0.5, 10.0, "Guidance scale; lower drifts less on long texts."),
    ParamSpec("inference_timesteps", int, 10, 1, 100, "Diffusion steps: more is slower and cleaner."),
    ParamSpec("normalize", bool, False, description="Normalise numbers and symbols first (wetext)."),
    ParamSpec("seed", int, None, 0, 2**32 - 1, "Same seed, same audio."),
)
VOXCPM2_LANGUAGES = (
    "en",
    "zh",
    "ja",
    "ko",
    "de",
    "fr",
    "es",
    "it",
    "pt",
    "ru",
    "ar",
    "nl",
    "pl",
    "tr",
    "vi",
    "th",
    "id",
    "ms",
    "hi",
    "sv",
    "da",
    "fi",
    "no",
    "el",
    "he",
    "cs",
    "hu",
    "ro",
    "uk",
    "fa",
)

VOXCPM2_INFO = EngineInfo(
    id="voxcpm2",
    name="VoxCPM2",
    description="OpenBMB VoxCPM2: 48 kHz, cloning, style control via instructions.",
    sample_rate=48000,
    languages=VOXCPM2_LANGUAGES,
    voices=("default",),
    cloning=True,
    instructions=True,
    gpu=True,
    streaming=True,
    exclusive_stream=True,
    max_chunk_chars=400,
    params=_PARAMS,
    weights_repo="openbmb/VoxCPM2",
)
VOXCPM1_5_INFO = EngineInfo(
    id="voxcpm1.5",
    name="VoxCPM 1.5",
    description="OpenBMB VoxCPM 1.5: 44.1 kHz, cloning from a clip with its transcript.",
    sample_rate=44100,
    languages=("en", "zh"),
    voices=("default",),
    cloning=True,
    gpu=True,
    streaming=True,
    exclusive_stream=True,
    max_chunk_chars=400,
    params=_PARAMS,
    weights_repo="openbmb/VoxCPM1.5",
)


@dataclass(frozen=True)
class Variant:
    """One VoxCPM model, as data."""

    info: EngineInfo
    needs_transcript: bool = False  # 1.5 clones only from a clip with its transcript
    transcript_optional: bool = False  # 2 clones from the clip alone, better with its transcript


VARIANTS = {
    v.info.id: v
    for v in (Variant(VOXCPM2_INFO, transcript_optional=True), Variant(VOXCPM1_5_INFO, needs_transcript=True))
}


def _compile_works(device: str) -> bool:
    """torch.compile pays off only on CUDA with Triton (Windows and macOS fall back to eager)."""
    return device.startswith("cuda") and importlib.util.find_spec("triton") is not None


class VoxCPMEngine(TorchEngine):
    def __init__(self, variant: Variant, settings: Settings) -> None:
        super().__init__(variant.info, settings)
        self.variant = variant
        self._normalizer: Any = None

    @property
    def sample_rate(self) -> int:
        return int(self._model.tts_model.sample_rate) if self._model is not None else self.info.sample_rate

    def _load_model(self, folder: Path, device: str) -> Any:
        from voxcpm import VoxCPM

        optimize = _compile_works(device)
        if not optimize:
            log.info("VoxCPM on %s: torch.compile is not available here, running eager (slower).", device)
        return VoxCPM(str(folder), zipenhancer_model_path=None, enable_denoiser=False, optimize=optimize, device=device)

    def _prompt_cache(self, reference: VoiceReference) -> Any:
        """The voice's prompt cache: memory, then disk, then encoded once from the reference audio."""
        tts = self._model.tts_model
        if self.variant.needs_transcript and not reference.transcript:
            raise InvalidRequest(
                f"{self.info.name} clones from a clip and its transcript; add a transcript to this voice.",
                param="voice",
            )

        def build() -> Any:
            path = str(reference.audio_path)
            if self.variant.transcript_optional:
                prompt = {"prompt_text": reference.transcript, "prompt_wav_path": path} if reference.transcript else {}
                return tts.build_prompt_cache(reference_wav_path=path, **prompt)
            return tts.build_prompt_cache(prompt_text=reference.transcript, prompt_wav_path=path)

        return self._voices.get(reference, build)

    def stream(self, request: SynthesisRequest) -> Iterator[AudioChunk]:
        model = self._loaded()
        params = self._params(request)
        text = request.text
        if params.pop("normalize"):
            if self._normalizer is None:
                from voxcpm.utils.text_normalize import TextNormalizer

                self._normalizer = TextNormalizer()
            text = self._normalizer.normalize(text)
        if request.instructions and self.info.instructions:
            text = f"({request.instructions.strip()}){text}"  # VoxCPM2 voice design / style control
        cache = self._prompt_cache(request.reference) if request.reference is not None else None
        pieces = model.tts_model.generate_with_prompt_cache_streaming(
            target_text=text, prompt_cache=cache, max_len=self._settings.voxcpm_max_len, **params
        )
        try:
            with self._guarded():
                for wav, _, _ in pieces:
                    yield AudioChunk(wav.squeeze(0).float().cpu().numpy(), self.sample_rate)
        finally:
            pieces.close()


ENGINES = {eid: (v.info, lambda settings, v=v: VoxCPMEngine(v, settings)) for eid, v in VARIANTS.items()}
