"""The Hugging Face token for gated weights: where it comes from, where the Models tab keeps it, how it is shown.

Sources, first found wins: the `hf_token` setting (`TTS_STUDIO_HF_TOKEN`), the token entered on the Models
tab (a file in the user data dir, mode 0600), `HF_TOKEN`, then huggingface_hub's standard token file
(`hf auth login`). The token is never logged and never shown back in full: `mask()` keeps its prefix and
its last four characters.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tts_studio.config import Settings
from tts_studio.errors import InvalidRequest

TOKEN_FILE = "hf_token"
HUB = "https://huggingface.co"


@dataclass(frozen=True)
class TokenStatus:
    """Where the token in effect comes from and how it is shown (never the token itself)."""

    source: str | None  # setting | studio | environment | huggingface | None
    masked: str | None

    def describe(self) -> str:
        if self.source is None:
            return "No Hugging Face token (gated weights need one)."
        where = {
            "setting": "the hf_token setting",
            "studio": "saved in the studio",
            "environment": "HF_TOKEN",
            "huggingface": "the Hugging Face token file",
        }[self.source]
        return f"Hugging Face token {self.masked} ({where})."


def token_path(settings: Settings) -> Path:
    return settings.data_dir / TOKEN_FILE


def mask(token: str) -> str:
    """`hf_…abcd`: enough to recognise a token, never enough to use it."""
    token = token.strip()
    prefix = "hf_" if token.startswith("hf_") else ""
    return f"{prefix}…{token[-4:]}" if len(token) > 8 else "…"


def _stored(settings: Settings) -> str | None:
    try:
        token = token_path(settings).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return token or None


def _huggingface_file() -> str | None:
    """huggingface_hub's own token file (`hf auth login`), without its environment lookups."""
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub comes with the core (faster-whisper)
        return None
    try:
        token = Path(constants.HF_TOKEN_PATH).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return token or None


def _lookup(settings: Settings) -> tuple[str | None, str | None]:
    if settings.hf_token is not None and settings.hf_token.get_secret_value().strip():
        return "setting", settings.hf_token.get_secret_value().strip()
    stored = _stored(settings)
    if stored is not None:
        return "studio", stored
    env = os.environ.get("HF_TOKEN", "").strip() or os.environ.get("HUGGING_FACE_HUB_TOKEN", "").strip()
    if env:
        return "environment", env
    standard = _huggingface_file()
    return ("huggingface", standard) if standard is not None else (None, None)


def hf_token(settings: Settings) -> str | None:
    """The token every weight download uses, or None."""
    return _lookup(settings)[1]


def status(settings: Settings) -> TokenStatus:
    source, token = _lookup(settings)
    return TokenStatus(source, mask(token) if token is not None else None)


def save_token(settings: Settings, token: str) -> TokenStatus:
    """Keep a token entered in the studio with the user's data (atomic, readable by the user only); an empty
    token removes it."""
    token = token.strip()
    if not token:
        token_path(settings).unlink(missing_ok=True)
        return status(settings)
    if any(ch.isspace() for ch in token) or not token.isprintable() or len(token) > 256:
        raise InvalidRequest("That does not look like a Hugging Face token.", param="hf_token")
    path = token_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{TOKEN_FILE}.", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token)
        os.chmod(tmp, 0o600)  # noqa: PTH101 - explicit, whatever mkstemp did on this platform
        os.replace(tmp, path)  # noqa: PTH105 - atomic rename
    finally:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
    return status(settings)


def gated_message(repo_id: str, what: str) -> str:
    """What to do about a gated or refused repository: the page to accept, and where the token goes."""
    return (
        f"{what} are gated on Hugging Face ({repo_id}): accept the terms at {HUB}/{repo_id} while logged in, "
        "then give the studio a Hugging Face token with read access: the token field on the Models tab, the "
        "hf_token setting (TTS_STUDIO_HF_TOKEN, or HF_TOKEN), or `hf auth login` (the standard token file). "
        "If a token is set already, its account has not accepted the terms yet."
    )
