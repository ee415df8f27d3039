"""Regenerate the settings table in README.md from tts_studio.config.Settings."""

from pathlib import Path

from tts_studio.config import settings_table

START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"
readme = Path(__file__).resolve().parents[1] / "README.md"
text = readme.read_text(encoding="utf-8")
a, b = text.index(START) + len(START), text.index(END)
readme.write_text(text[:a] + "\n" + settings_table() + "\n" + text[b:], encoding="utf-8")
