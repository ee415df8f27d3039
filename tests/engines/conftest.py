"""The `engines` group: the real chatterbox-tts and voxcpm packages on locally built random-weight checkpoints.

Runs only where the packages are installed (CI builds `.venv-engines` for it). Checkpoints are built once
per session; the tiny T3 shape is patched into chatterbox's config table for the whole session, as the
real loader reads it from there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engines.checkpoints import (
    TINY_T3_LAYERS,
    build_chatterbox,
    build_chatterbox_multilingual,
    build_chatterbox_turbo,
    build_voxcpm,
    tiny_gpt2_config,
    tiny_t3_config,
)

CHATTERBOX_TOKENS = 10  # the crafted T3 stops after 10 speech tokens: 0.4 s of audio per chunk


@pytest.fixture(scope="session", autouse=True)
def tiny_t3() -> Iterator[None]:
    from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(LLAMA_CONFIGS, "Llama_520M", tiny_t3_config(TINY_T3_LAYERS))
        patch.setitem(LLAMA_CONFIGS, "GPT2_medium", tiny_gpt2_config())
        yield


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {
        "chatterbox": build_chatterbox(root / "chatterbox", tokens=CHATTERBOX_TOKENS, layers=TINY_T3_LAYERS),
        "chatterbox-multilingual": build_chatterbox_multilingual(root / "chatterbox-mtl", tokens=CHATTERBOX_TOKENS),
        "chatterbox-turbo": build_chatterbox_turbo(root / "chatterbox-turbo", tokens=CHATTERBOX_TOKENS),
        "voxcpm2": build_voxcpm(root / "voxcpm2", "voxcpm2"),
        "voxcpm1.5": build_voxcpm(root / "voxcpm1.5", "voxcpm"),
    }
