"""The layers import downwards only: services/ knows nothing of projects/, api/, ui/ or the composition root
above it (tts_studio/studio.py); engines/ and audio/ know nothing of services/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tts_studio"
FORBIDDEN = {
    "services": ("tts_studio.projects", "tts_studio.api", "tts_studio.ui", "tts_studio.studio", "tts_studio.app"),
    "engines": ("tts_studio.services", "tts_studio.projects", "tts_studio.api", "tts_studio.ui"),
    "audio": ("tts_studio.services", "tts_studio.projects", "tts_studio.api", "tts_studio.ui"),
    "projects": ("tts_studio.api", "tts_studio.ui", "tts_studio.studio", "tts_studio.app"),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(layer: str) -> None:
    wrong = {
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in (PACKAGE / layer).rglob("*.py")
        for name in _imports(path)
        if name.startswith(FORBIDDEN[layer])
    }
    assert not wrong


def test_the_formatter_owns_the_layout() -> None:
    skips = sum(path.read_text(encoding="utf-8").count("# fmt: skip") for path in PACKAGE.rglob("*.py"))
    assert skips <= 10
