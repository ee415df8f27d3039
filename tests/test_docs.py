"""The README's settings table is generated from Settings and must match it."""

from __future__ import annotations

from pathlib import Path

from tts_studio.config import settings_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_settings_table_is_current() -> None:
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- settings-table:start -->") + len("<!-- settings-table:start -->")
    end = text.index("<!-- settings-table:end -->")
    assert text[start:end].strip() == settings_table(), "run python docs/update_settings_table.py"
