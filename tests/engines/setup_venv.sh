#!/usr/bin/env bash
# Builds .venv-engines: the core plus chatterbox-tts and voxcpm on a CPU torch, for the engines test group,
# and `transformers serve` (transformers + accelerate): the real LLM server the chat tests start.
# Users install the GPU engines with `pip install 'tts-studio[chatterbox,voxcpm]'` (torch/torchaudio 2.6.0);
# on this CPU-only test machine the PyTorch CPU index is out of reach, so this uses the CPU torch 2.13.0
# wheel pip finds locally, torchaudio 2.11.0 without its CUDA-only extension (the pure-Python parts that
# chatterbox and VoxCPM2 use still work), and both engine packages without their torch pins.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${TTS_STUDIO_ENGINES_VENV:-.venv-engines}
PYTHON=${PYTHON:-python3}
stamp="$VENV/.engines-installed"
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt "$0" ]; then
    exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
pip install torch==2.13.0 uv
# pocket-tts (the CPU cloning engine) pins numpy>=2, which chatterbox-tts refuses; it runs on numpy 1.26.
pip install --no-deps torchaudio==2.11.0 chatterbox-tts==0.1.7 "voxcpm==2.0.3" pocket-tts==4.0.1
constraints=$(mktemp)
printf 'torch==2.13.0\ntorchaudio==2.11.0\n' > "$constraints"
"$VENV/bin/python" -m uv pip install -q --python "$VENV/bin/python" -c "$constraints" -e ".[test,ray]" \
    "librosa==0.11.0" s3tokenizer "transformers==5.2.0" "diffusers==0.29.0" "resemble-perth>=1.0.0" \
    "conformer==0.3.2" "safetensors==0.5.3" spacy-pkuseg "pykakasi==2.3.0" pyloudnorm omegaconf "setuptools<81" \
    "numpy<2" einops inflect addict wetext "modelscope>=1.22.0" "datasets>=3,<4" huggingface-hub simplejson \
    sortedcontainers matplotlib argbind "accelerate>=1.0" "sentencepiece>=0.2.1" "pyarrow>=15,<21"
rm -f "$constraints"
rm -f "$VENV"/lib/python3*/site-packages/torchaudio/lib/*.so   # CUDA-only extension (needs libtorch_cuda)
"$VENV/bin/python" -c "import chatterbox.tts, voxcpm, torchaudio, pocket_tts" 2>/dev/null
touch "$stamp"
