"""Where engine weights come from: a local folder, the user cache, or a download the user asked for."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tts_studio.config import Settings
from tts_studio.engines.base import EngineInfo
from tts_studio.engines.hf_token import gated_message, hf_token
from tts_studio.errors import EngineUnavailable

log = logging.getLogger(__name__)


def hub_cache(settings: Settings) -> Path:
    return settings.cache_dir / "hub"


Progress = Callable[[int, int], None]  # (files done, files in all)


def _progress_bar(report: Progress) -> Any:
    """A tqdm class for huggingface_hub's file counter that reports to `report`."""
    from tqdm.auto import tqdm

    class Reporting(tqdm):  # type: ignore[misc]  # tqdm has no type hints: mypy sees a base of type Any
        def update(self, n: float | None = 1) -> bool | None:
            shown: bool | None = super().update(n)
            report(int(self.n), int(self.total or 0))
            return shown

    return Reporting


def resolve_weights(
    settings: Settings, info: EngineInfo, *, download: bool | None = None, progress: Progress | None = None
) -> Path:
    """The checkpoint folder for the engine `info`.

    `engine_dirs[engine_id]` wins (a local copy). Otherwise the Hugging Face snapshot in the user cache
    is used; if it is missing it is downloaded when `download` (default: `allow_downloads`) allows,
    else a 503 says how to get it.
    """
    engine_id, repo_id = info.id, info.weights_repo
    if repo_id is None:
        raise EngineUnavailable(f"The engine '{engine_id}' has no weights to fetch.")
    local = settings.engine_dirs.get(engine_id)
    if local is not None:
        if not Path(local).is_dir():
            raise EngineUnavailable(f"The folder for '{engine_id}' ({local}) does not exist (setting engine_dirs).")
        return Path(local)
    cached = _cached_snapshot(settings, info)
    if cached is not None:
        return cached
    from huggingface_hub import snapshot_download

    patterns = list(info.weights_files) if info.weights_files else None
    if not (settings.allow_downloads if download is None else download):
        raise EngineUnavailable(_missing(engine_id, repo_id, "downloads are off (allow_downloads)"))
    log.info("Downloading the weights of %s from %s into %s", engine_id, repo_id, hub_cache(settings))
    try:
        path = snapshot_download(
            repo_id,
            allow_patterns=patterns,
            cache_dir=hub_cache(settings),
            etag_timeout=10,
            tqdm_class=_progress_bar(progress) if progress is not None else None,
            token=hf_token(settings),
        )
    except Exception as exc:
        if refused(exc):
            raise EngineUnavailable(gated_message(repo_id, f"The weights of '{engine_id}'"), code="gated") from None
        raise EngineUnavailable(_missing(engine_id, repo_id, f"{type(exc).__name__}")) from exc
    log.info("Weights of %s ready in %s", engine_id, path)
    return Path(path)


def refused(exc: BaseException) -> bool:
    """The hub refused the repository: gated (terms not accepted) or unauthorised (no or a bad token)."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError

    if isinstance(exc, GatedRepoError):
        return True
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return isinstance(exc, HfHubHTTPError) and status in (401, 403)


def hub_file(settings: Settings, repo_id: str, filename: str, revision: str | None, what: str) -> Path:
    """One file of a hub repository at `revision`: from the user cache, else downloaded with the user's token
    (when allow_downloads); a refused repository is a 503 naming the page to accept, `what` names the files."""
    from huggingface_hub import hf_hub_download

    def fetch(offline: bool) -> Path:
        token = None if offline else hf_token(settings)
        return Path(
            hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=hub_cache(settings),
                local_files_only=offline,
                token=token,
            )
        )

    try:
        return fetch(offline=True)
    except Exception:  # not cached
        pass
    if not settings.allow_downloads:
        raise EngineUnavailable(f"{what} ({repo_id}) are not on this machine and downloads are off (allow_downloads).")
    log.info("Downloading %s from %s into %s", filename, repo_id, hub_cache(settings))
    try:
        return fetch(offline=False)
    except Exception as exc:
        if refused(exc):
            raise EngineUnavailable(gated_message(repo_id, what), code="gated") from None
        raise EngineUnavailable(
            f"{what} ({repo_id}) are not on this machine and could not be downloaded ({type(exc).__name__}); "
            "connect once to fetch them, or point the setting engine_dirs at a local copy."
        ) from exc


def _missing(engine_id: str, repo_id: str, reason: str) -> str:
    return (
        f"The weights of '{engine_id}' ({repo_id}) are not on this machine and could not be downloaded "
        f"({reason}). Download them once while online with `tts-studio download {engine_id}`, or point "
        f"the setting engine_dirs at a local copy."
    )


def _cached_snapshot(settings: Settings, info: EngineInfo) -> Path | None:
    """The hub snapshot in the user cache, if complete; never touches the network."""
    from huggingface_hub import snapshot_download

    assert info.weights_repo is not None
    patterns = list(info.weights_files) if info.weights_files else None
    try:
        path = snapshot_download(
            info.weights_repo, allow_patterns=patterns, cache_dir=hub_cache(settings), local_files_only=True
        )
    except Exception:  # not cached (LocalEntryNotFoundError and friends)
        return None
    return Path(path)


def weights_present(settings: Settings, info: EngineInfo) -> bool:
    """Whether the engine's weights are on this machine (local folder or hub cache); no network."""
    if info.weights_repo is None:
        return True
    if info.id in settings.engine_dirs:
        return Path(settings.engine_dirs[info.id]).is_dir()
    return _cached_snapshot(settings, info) is not None
