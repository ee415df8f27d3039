"""The composition root: every shared service, built once per app, above the layers it composes (services,
projects); the API (via app.state), the UI, Wyoming and MCP use the same objects."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial

from tts_studio.audio.decode import AudioLimits
from tts_studio.config import OPENAI_VOICES, Settings
from tts_studio.engines.hibari_engine import extra_voices
from tts_studio.engines.manager import ModelManager
from tts_studio.engines.registry import EngineSpec
from tts_studio.projects.dictionary import GlobalDictionary
from tts_studio.projects.render import ProjectRenderer
from tts_studio.projects.service import ProjectService
from tts_studio.projects.store import ProjectStore
from tts_studio.services.admission import RequestSlots
from tts_studio.services.chat import ChatUpstream
from tts_studio.services.embedded_voices import EmbeddedVoices
from tts_studio.services.engine_installer import EngineInstaller
from tts_studio.services.history import History
from tts_studio.services.job import SpeechJobs
from tts_studio.services.library import VoiceLibrary
from tts_studio.services.speech import SpeechService
from tts_studio.services.transcription import Transcriber
from tts_studio.services.voice_design import CandidateStore
from tts_studio.services.voices import VoiceCatalog, VoiceMap
from tts_studio.services.whisper_models import MultilingualWhisper


@dataclass(frozen=True)
class Services:
    settings: Settings
    manager: ModelManager
    speech: SpeechService
    voices: VoiceCatalog
    transcriber: Transcriber
    history: History
    embedded_voices: EmbeddedVoices
    speech_slots: RequestSlots  # admission, shared by every protocol
    transcription_slots: RequestSlots
    chat: ChatUpstream  # the LLM server behind chat, Responses and Realtime (may be unconfigured)
    dictionary: GlobalDictionary  # the studio-wide pronunciation dictionary
    projects: ProjectService  # long-form projects and their background render queue
    jobs: SpeechJobs  # the one speech job: admission, lease, driver and cleanup for every caller
    installer: EngineInstaller = field(default_factory=EngineInstaller)  # engine extras, one install at a time
    designs: CandidateStore = field(default_factory=CandidateStore)  # designed-voice candidates, bounded


def local_transcriber(settings: Settings) -> Transcriber:
    """Whisper in this process. Half the cores: it then runs beside an engine (project verification) without a
    thread barrier stalling on a busy core; on 2 cores one thread was faster even alone (bench/projects_bench.py).
    """
    return Transcriber(
        threads=max(1, (os.cpu_count() or 2) // 2),
        wait_limit=settings.queue_wait_seconds,
        idle_unload_seconds=settings.idle_unload_seconds,
        multilingual=MultilingualWhisper(settings),  # when downloaded: every language besides English
    )


def build_services(
    settings: Settings, engines: Mapping[str, EngineSpec], transcriber: Transcriber | None = None, owner: bool = True
) -> Services:
    """Cheap: nothing loads here (engines load on first use, Whisper on first transcript). `transcriber`:
    another Whisper than this process's own (a Ray deployment); `owner=False`: a replica reading the data an
    owner writes (it cleans up nothing)."""
    manager = ModelManager(engines, settings)
    transcriber = transcriber or local_transcriber(settings)
    engine_voices = {voice for spec in engines.values() for voice in spec.info.voices}
    library = VoiceLibrary(
        settings.data_dir / "voices",
        settings.bundled_voices_dir,
        AudioLimits(max_bytes=settings.voice_max_bytes, max_seconds=settings.voice_max_seconds),
        transcriber.for_library if settings.auto_transcribe else None,
        reserved_names={*OPENAI_VOICES, *extra_voices(), *engine_voices},
        recover=owner,
    )
    bundled_map = settings.bundled_voices_dir / "openai_voice_map.json" if settings.bundled_voices_dir else None
    mapping = VoiceMap(bundled_map, settings.data_dir / "voice_map.json", settings.voice_map)
    installed = {eid: spec.info for eid, spec in engines.items() if spec.installed}
    ready = {
        eid: partial(check, settings)
        for eid, spec in engines.items()
        if (check := spec.cloning_ready) and spec.installed
    }
    catalog = VoiceCatalog(installed, library, mapping, ready)
    speech = SpeechService(manager, catalog, settings)
    embedded = EmbeddedVoices(settings, manager, catalog)
    embedded.refresh()  # voices downloaded earlier are speakable at once
    history = History(settings.data_dir / "history")
    speech_slots = RequestSlots(settings.max_active_requests)
    transcription_slots = RequestSlots(settings.max_active_transcriptions, "transcription")
    dictionary = GlobalDictionary(settings.data_dir / "dictionary.json")
    store = ProjectStore(settings.data_dir / "projects")
    jobs = SpeechJobs(speech, speech_slots)
    renderer = ProjectRenderer(store, jobs, transcriber, dictionary, settings)
    return Services(
        settings,
        manager,
        speech,
        catalog,
        transcriber,
        history,
        embedded,
        speech_slots,
        transcription_slots,
        ChatUpstream(settings),
        dictionary,
        ProjectService(store, renderer, speech, dictionary),
        jobs,
    )
