"""Chatterbox voice conversion: a recording re-voiced into a library voice, its timing kept.

`chatterbox.vc.ChatterboxVC` without an autoregressive model: the source becomes 25 Hz S3 speech tokens,
S3Gen's flow decoder turns them into mel frames conditioned on the target voice, HiFT into audio. The
output is as long as the input (40 ms per token). By default S3Gen is the Chatterbox Turbo **meanflow**
decoder (`s3gen_meanflow.safetensors`) at 2 steps (1 is faster); `chatterbox-vc-standard` is the normal
decoder at 10 steps (the meanflow-for-VC pairing is not documented upstream: chatterbox#386).

The target's conditioning (its first 10 s) is cached per voice content hash. Long sources are split at
their quietest moments into pieces of at most `PIECE_SECONDS` (the flow attends over reference + piece)
and converted piece by piece: each piece is one device turn and one streamed chunk.

`hibari-vc` is a text engine built on the same decoder: the embedded engine speaks, the decoder re-voices
(a CPU clone that needs no account or token; English, with hibari's delivery).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf  # type: ignore[import-untyped]  # no stubs

from tts_studio.audio.dsp import resample
from tts_studio.config import Settings
from tts_studio.engines.base import Audio, AudioChunk, EngineInfo, ParamSpec, SynthesisRequest, VoiceReference
from tts_studio.engines.torch_base import TorchEngine
from tts_studio.errors import InvalidRequest

log = logging.getLogger(__name__)

SAMPLE_RATE = 24000  # S3Gen's output rate
TOKEN_RATE = 16000  # S3 tokenizer input rate
REFERENCE_SECONDS = 10.0  # ChatterboxVC.DEC_COND_LEN: the target voice is embedded from its first 10 s
PIECE_SECONDS = 15.0  # longest source piece converted in one call
FRAME_SECONDS = 0.02  # energy frames searched for a quiet cut


def split_at_silences(samples: Audio, rate: int, max_seconds: float = PIECE_SECONDS) -> list[tuple[int, int]]:
    """(start, end) sample bounds covering `samples`, each at most `max_seconds`, cut at the quietest 20 ms
    frame near an even split (never shorter than about a third of the even length)."""
    total, longest = len(samples), int(max_seconds * rate)
    if total <= longest:
        return [(0, total)]
    frame = max(1, int(rate * FRAME_SECONDS))
    frames = total // frame
    energy = np.sqrt(np.mean(np.square(samples[: frames * frame].reshape(frames, frame)), axis=1))
    bounds: list[tuple[int, int]] = []
    start = 0
    while total - start > longest:
        pieces = -(-(total - start) // longest)  # ceil: pieces still needed
        even = (total - start) // pieces
        low = (start + even * 2 // 3) // frame
        high = min(start + longest, start + even * 4 // 3) // frame
        cut = (low + int(np.argmin(energy[low:high]))) * frame + frame // 2 if high > low else start + even
        bounds.append((start, cut))
        start = cut
    bounds.append((start, total))
    return bounds


_STEPS_HELP = "Decoder steps: more is slower and a little cleaner."
CHATTERBOX_VC_INFO = EngineInfo(
    id="chatterbox-vc",
    name="Chatterbox voice conversion",
    description="Re-voices a recording into a library voice, keeping its timing (Chatterbox Turbo meanflow "
    "decoder; 2 steps by default, 1 is faster). POST /v1/audio/voice-conversion.",
    sample_rate=SAMPLE_RATE,
    languages=("en",),
    cloning=True,
    gpu=True,
    converts_audio=True,
    weights_repo="ResembleAI/chatterbox-turbo",
    weights_files=("s3gen_meanflow.safetensors",),
    params=(ParamSpec("steps", int, 2, 1, 10, _STEPS_HELP),),
)
CHATTERBOX_VC_STANDARD_INFO = replace(
    CHATTERBOX_VC_INFO,
    id="chatterbox-vc-standard",
    name="Chatterbox voice conversion (standard decoder)",
    description="Voice conversion with Chatterbox's normal S3Gen decoder (10 steps, about 4x slower than "
    "chatterbox-vc on a CPU).",
    weights_repo="ResembleAI/chatterbox",
    weights_files=("s3gen.safetensors",),
    params=(ParamSpec("steps", int, 10, 1, 50, _STEPS_HELP),),
)


@dataclass(frozen=True)
class Decoder:
    """Which S3Gen a conversion engine loads."""

    info: EngineInfo
    weights: str
    meanflow: bool


DECODERS = {
    d.info.id: d
    for d in (
        Decoder(CHATTERBOX_VC_INFO, "s3gen_meanflow.safetensors", meanflow=True),
        Decoder(CHATTERBOX_VC_STANDARD_INFO, "s3gen.safetensors", meanflow=False),
    )
}


class ChatterboxVCEngine(TorchEngine):
    """One S3Gen decoder in a `ChatterboxVC`; `stream` converts `request.source` into `request.reference`."""

    def __init__(self, decoder: Decoder, settings: Settings) -> None:
        super().__init__(decoder.info, settings)
        self.decoder = decoder

    def _load_model(self, folder: Path, device: str) -> Any:
        import torch
        from chatterbox.models.s3gen import S3Gen
        from chatterbox.vc import ChatterboxVC
        from safetensors.torch import load_file  # type: ignore[import-not-found,unused-ignore]

        torch.set_flush_denormal(True)  # denormals (random or quiet weights) make HiFT over twice as slow
        s3gen = S3Gen(meanflow=self.decoder.meanflow)
        # the meanflow file is complete (strict); the standard one also holds unused keys, as upstream loads it
        s3gen.load_state_dict(load_file(folder / self.decoder.weights), strict=self.decoder.meanflow)
        model = ChatterboxVC(s3gen.to(device).eval(), device)
        if not self._settings.watermark:
            import perth

            model.watermarker = perth.DummyWatermarker()
            log.warning("Chatterbox watermarking is off (setting watermark).")
        return model

    def _load_voice(self, path: Path) -> Any:
        import torch

        value: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        return {k: v.to(self._device) if torch.is_tensor(v) else v for k, v in value.items()}

    def _target(self, model: Any, reference: VoiceReference) -> Any:
        """The voice's S3Gen reference (its first 10 s): memory, the disk cache, else embedded once."""

        def build() -> Any:
            wav, rate = sf.read(str(reference.audio_path), dtype="float32", always_2d=True)
            wav = resample(wav.mean(axis=1), rate, SAMPLE_RATE)[: int(REFERENCE_SECONDS * SAMPLE_RATE)]
            return model.s3gen.embed_ref(wav, SAMPLE_RATE, device=self._device)

        return self._voices.get(reference, build)

    def stream(self, request: SynthesisRequest) -> Iterator[AudioChunk]:
        model = self._loaded()
        source, reference = request.source, request.reference
        if source is None:
            raise InvalidRequest(
                f"The engine '{self.info.id}' converts recordings; send them to POST /v1/audio/voice-conversion.",
                param="model",
                code="model_not_supported",
            )
        if reference is None:
            raise InvalidRequest(f"The engine '{self.info.id}' needs a library voice to convert into.", param="voice")
        steps = int(self._params(request)["steps"])
        for start, end in split_at_silences(source.samples, source.sample_rate, PIECE_SECONDS):
            yield self._convert(model, reference, source.samples[start:end], source.sample_rate, steps)

    def _convert(self, model: Any, reference: VoiceReference, samples: Audio, rate: int, steps: int) -> AudioChunk:
        import torch

        torch.set_flush_denormal(True)  # per thread: this is the synthesis thread
        with self._guarded(), torch.inference_mode():
            ref_dict = self._target(model, reference)
            wav16 = torch.from_numpy(resample(samples, rate, TOKEN_RATE)).float().to(self._device)[None]
            tokens, _ = model.s3gen.tokenizer(wav16)
            wav, _ = model.s3gen.inference(speech_tokens=tokens, ref_dict=ref_dict, n_cfm_timesteps=steps)
            out = wav.squeeze(0).detach().cpu().numpy().astype(np.float32)
            out = np.asarray(model.watermarker.apply_watermark(out, sample_rate=SAMPLE_RATE), dtype=np.float32)
        return AudioChunk(np.clip(out, -1.0, 1.0), SAMPLE_RATE)


HIBARI_VC_INFO = EngineInfo(
    id="hibari-vc",
    name="Hibari + voice conversion",
    description="Clones on a CPU without an account or token: the embedded engine speaks each sentence and "
    "chatterbox-vc re-voices it into the library voice (English; the delivery and accent stay hibari's).",
    sample_rate=SAMPLE_RATE,
    languages=("en",),
    speed_range=(0.5, 2.0),  # hibari's own
    cloning=True,
    gpu=True,
    max_chunk_chars=300,
    weights_repo=CHATTERBOX_VC_INFO.weights_repo,
    weights_files=CHATTERBOX_VC_INFO.weights_files,
    params=(*CHATTERBOX_VC_INFO.params, ParamSpec("seed", int, None, 0, 2**32 - 1, "Same seed, same audio.")),
)


class HibariVCEngine(ChatterboxVCEngine):
    """Text to a cloned voice in two steps: hibari speaks a chunk (its `heart` voice), the meanflow decoder
    re-voices it. Its own hibari and S3Gen instances: one lease, one device turn per chunk."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(Decoder(HIBARI_VC_INFO, "s3gen_meanflow.safetensors", meanflow=True), settings)
        self._speaker: Any = None

    def load(self, device: str) -> None:
        from tts_studio.engines.hibari_engine import HibariEngine, voice_dir

        speaker = HibariEngine(self._settings.hibari_threads, voice_dir(self._settings))
        speaker.load("cpu")
        super().load(device)
        self._speaker = speaker

    def unload(self) -> None:
        super().unload()
        self._speaker = None

    def stream(self, request: SynthesisRequest) -> Iterator[AudioChunk]:
        model = self._loaded()
        if request.reference is None:
            raise InvalidRequest(f"The engine '{self.info.id}' speaks library voices only.", param="voice")
        params = self._params(request)  # applies `seed`
        said = SynthesisRequest(request.text, "heart", request.speed, params={"seed": request.params.get("seed")})
        spoken = [piece.samples for piece in self._speaker.stream(said)]
        audio = np.concatenate(spoken) if spoken else np.zeros(0, np.float32)
        for start, end in split_at_silences(audio, SAMPLE_RATE, PIECE_SECONDS) if len(audio) else []:
            yield self._convert(model, request.reference, audio[start:end], SAMPLE_RATE, int(params["steps"]))


ENGINES: dict[str, tuple[EngineInfo, Any]] = {
    eid: (d.info, lambda settings, d=d: ChatterboxVCEngine(d, settings)) for eid, d in DECODERS.items()
}
ENGINES["hibari-vc"] = (HIBARI_VC_INFO, HibariVCEngine)
