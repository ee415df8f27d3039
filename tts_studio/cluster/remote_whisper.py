"""Whisper as a Ray Serve deployment: `WhisperReplica` holds a Transcriber; `RemoteTranscriber` is the
Transcriber the ingress replicas use (transcriptions, Realtime input, library transcripts, project checks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tts_studio.audio.decode import DecodedAudio
from tts_studio.cluster.errors import translate
from tts_studio.config import Settings
from tts_studio.engines.scheduler import Priority
from tts_studio.offline import disable_telemetry
from tts_studio.services.transcription import Transcriber, Transcript
from tts_studio.services.whisper_models import MultilingualWhisper
from tts_studio.studio import local_transcriber


class WhisperReplica:
    """The body of the Whisper deployment."""

    def __init__(self, settings: Settings) -> None:
        disable_telemetry(settings.cache_dir)
        self.transcriber = local_transcriber(settings)

    def transcribe(self, audio: DecodedAudio, options: dict[str, Any]) -> Transcript:
        return self.transcriber.transcribe(audio, **options)


class RemoteTranscriber(Transcriber):
    """Transcribes on the Whisper deployment (blocking: called from worker threads, as a local one is). What
    this process knows (languages, models on this machine) still answers `can_transcribe` and `status`."""

    def __init__(self, settings: Settings, deployment: str, app_name: str) -> None:
        super().__init__(multilingual=MultilingualWhisper(settings))
        self._deployment, self._app_name = deployment, app_name
        self._handle: Any = None  # taken on first use, then kept (its router learns the replicas' queues)

    def transcribe(
        self,
        audio: DecodedAudio,
        language: str | None = "en",
        prompt: str | None = None,
        temperature: float = 0.0,
        word_timestamps: bool = False,
        priority: Priority = Priority.INTERACTIVE,
        *,
        languages: Sequence[str] = (),
        hotwords: str | None = None,
        vad: dict[str, float] | None = None,
    ) -> Transcript:
        from ray import serve

        options = {
            "language": language,
            "prompt": prompt,
            "temperature": temperature,
            "word_timestamps": word_timestamps,
            "priority": priority,
            "languages": tuple(languages),
            "hotwords": hotwords,
            "vad": vad,
        }
        if self._handle is None:
            self._handle = serve.get_deployment_handle(self._deployment, app_name=self._app_name)
        try:
            result: Transcript = self._handle.transcribe.remote(audio, options).result()
        except Exception as exc:
            raise translate("whisper", exc) from None
        return result
