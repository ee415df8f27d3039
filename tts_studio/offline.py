"""Keep the process off the network: telemetry switches set before gradio/huggingface are imported."""

from __future__ import annotations

import os
from pathlib import Path


def disable_telemetry(cache_dir: Path) -> None:
    """Gradio analytics and Hugging Face telemetry off; Gradio's temp files under our cache dir."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("GRADIO_TEMP_DIR", str(cache_dir / "gradio"))
