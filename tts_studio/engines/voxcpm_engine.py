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
from pathlib import Path
from typing import Any

from tts_studio.config import Settings
from tts_studio.engines.base import AudioChunk, EngineInfo, ParamSpec, SynthesisRequest, VoiceReference
from tts_studio.engines.torch_utils import VoiceCache, out_of_memory, seed_everything
from tts_studio.engines.weights import resolve_weights
from tts_studio.errors import EngineUnavailable, InvalidRequest

log = logging.getLogger(__name__)

_PARAMS = (
    ParamSpec("cfg_value", float, 2.0, 0.5, 10.0, "Guidance scale; lower drifts less on long texts."),
    ParamSpec("inference_timesteps", int, 10, 1, 100, "Diffusion steps: more is slower and cleaner."),
    ParamSpec("normalize", bool, False, description="Normalise numbers and symbols first (wetext)."),
    ParamSpec("seed", int, None, 0, 2**32 - 1, "Same seed, same audio."),
)
VOXCPM2_LANGUAGES = (
    "en", "zh", "ja", "ko", "de", "fr", "es", "it", "pt", "ru", "ar", "nl", "pl", "tr", "vi",
    "th", "id", "ms", "hi", "sv", "da", "fi", "no", "el", "he", "cs", "hu", "ro", "uk", "fa",
)  # fmt: skip

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


def _compile_works(device: str) -> bool:
    """torch.compile pays off only on CUDA with Triton (Windows and macOS fall back to eager)."""
    return device.startswith("cuda") and importlib.util.find_spec("triton") is not None


class VoxCPMEngine:
    def __init__(self, info: EngineInfo, settings: Settings) -> None:
        self.info = info
        self._settings = settings
        self._model: Any = None
        self._device = "cpu"
        self._normalizer: Any = None
        self._voices = VoiceCache(info.id, self._save_prompt, self._load_prompt)

    @property
    def sample_rate(self) -> int:
        return int(self._model.tts_model.sample_rate) if self._model is not None else self.info.sample_rate

    def load(self, device: str) -> None:
        from voxcpm import VoxCPM

        folder = resolve_weights(self._settings, self.info)
        optimize = _compile_works(device)
        if not optimize:
            log.info("VoxCPM on %s: torch.compile is not available here, running eager (slower).", device)
        self._model = VoxCPM(str(folder), zipenhancer_model_path=None, enable_denoiser=False, optimize=optimize,
                             device=device)  # fmt: skip
        self._device = device

    def unload(self) -> None:
        self._model = None
        self._voices.clear()

    @property
    def encoded(self) -> int:
        """References encoded from audio (not from a cache) since load."""
        return self._voices.built

    @staticmethod
    def _save_prompt(cache: Any, path: Path) -> None:
        import torch

        torch.save(cache, path)

    def _load_prompt(self, path: Path) -> Any:
        import torch

        return torch.load(path, map_location=self._device, weights_only=True)

    def _prompt_cache(self, reference: VoiceReference) -> Any:
        """The voice's prompt cache: memory, then disk, then encoded once from the reference audio."""
        tts = self._model.tts_model
        v2 = self.info.id == "voxcpm2"
        if not v2 and not reference.transcript:
            raise InvalidRequest(
                "VoxCPM 1.5 clones from a clip and its transcript; add a transcript to this voice.", param="voice"
            )

        def build() -> Any:
            path = str(reference.audio_path)
            if v2:
                prompt = {"prompt_text": reference.transcript, "prompt_wav_path": path} if reference.transcript else {}
                return tts.build_prompt_cache(reference_wav_path=path, **prompt)
            return tts.build_prompt_cache(prompt_text=reference.transcript, prompt_wav_path=path)

        return self._voices.get(reference, build)

    def stream(self, request: SynthesisRequest) -> Iterator[AudioChunk]:
        if self._model is None:
            raise EngineUnavailable(f"The engine '{self.info.id}' is not loaded.")
        params = {p.name: request.params.get(p.name, p.default) for p in self.info.params}
        seed_everything(params.pop("seed"))
        text = request.text
        if params.pop("normalize"):
            if self._normalizer is None:
                from voxcpm.utils.text_normalize import TextNormalizer

                self._normalizer = TextNormalizer()
            text = self._normalizer.normalize(text)
        if request.instructions and self.info.instructions:
            text = f"({request.instructions.strip()}){text}"  # VoxCPM2 voice design / style control
        cache = self._prompt_cache(request.reference) if request.reference is not None else None
        pieces = self._model.tts_model.generate_with_prompt_cache_streaming(
            target_text=text, prompt_cache=cache, max_len=self._settings.voxcpm_max_len, **params
        )
        try:
            for wav, _, _ in pieces:
                yield AudioChunk(wav.squeeze(0).float().cpu().numpy(), self.sample_rate)
        except Exception as exc:
            oom = out_of_memory(exc, self._device, self.info.id)
            if oom is not None:
                raise oom from exc
            raise
        finally:
            pieces.close()


def make_voxcpm2(settings: Settings) -> VoxCPMEngine:
    return VoxCPMEngine(VOXCPM2_INFO, settings)


def make_voxcpm1_5(settings: Settings) -> VoxCPMEngine:
    return VoxCPMEngine(VOXCPM1_5_INFO, settings)
