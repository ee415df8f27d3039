"""The embedded engine's optional voices: which are here, fetching them (only when asked), and making the
manager and the voice catalog (so the OpenAI-name mapping and every listing) see them at once."""

from __future__ import annotations

from tts_studio.config import Settings
from tts_studio.engines.hibari_engine import download_voices, downloaded_voices, extra_voices, hibari_info, voice_dir
from tts_studio.engines.manager import ModelManager
from tts_studio.services.voices import VoiceCatalog

ENGINE_ID = "hibari"


class EmbeddedVoices:
    def __init__(self, settings: Settings, manager: ModelManager, catalog: VoiceCatalog) -> None:
        self.settings = settings
        self.manager = manager
        self.catalog = catalog

    @property
    def enabled(self) -> bool:
        return ENGINE_ID in self.manager.engine_ids and self.manager.installed(ENGINE_ID)

    def present(self) -> list[str]:
        return downloaded_voices(voice_dir(self.settings))

    def missing(self) -> list[str]:
        here = set(self.present())
        return [name for name in extra_voices() if name not in here]

    def refresh(self) -> None:
        """Publish the voices on disk to the manager and the catalog."""
        if self.enabled:
            info = hibari_info(voice_dir(self.settings))
            self.manager.replace_info(ENGINE_ID, info)
            self.catalog.set_engine(info)

    def download(self, base_url: str | None = None) -> list[str]:
        """Fetch what is missing (sha256-checked), then publish; returns the names fetched."""
        fetched = download_voices(self.settings, base_url)
        self.refresh()
        return fetched
