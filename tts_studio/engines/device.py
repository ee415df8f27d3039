"""Device choice and memory release for GPU engines (torch is imported only when asked)."""

from __future__ import annotations

import gc
import importlib.util


def pick_device(preference: str = "auto") -> str:
    """`preference` unless it is "auto": then CUDA, then Apple MPS, then CPU."""
    if preference != "auto":
        return preference
    if importlib.util.find_spec("torch") is None:
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def free_memory(device: str) -> None:
    """Collect garbage and hand cached device memory back to the driver."""
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
    elif device == "mps":
        import torch

        torch.mps.empty_cache()
