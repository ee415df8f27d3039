"""The Wyoming protocol (Home Assistant) on the studio's own services: `describe`, `synthesize` (and the
streaming `synthesize-start/-chunk/-stop`, spoken sentence by sentence), `transcribe` + audio. Runs as a
TCP server inside the same process and event loop; speech goes through the one pipeline and shares the
HTTP server's admission limit. Wyoming has no authentication: bind it to loopback unless the network is
trusted."""

from __future__ import annotations

import logging
from collections.abc import Generator
from functools import partial
from typing import Any

import anyio
import numpy as np
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info, TtsProgram, TtsVoice
from wyoming.server import AsyncEventHandler, AsyncTcpServer
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from tts_studio import __version__
from tts_studio.audio.decode import DecodedAudio
from tts_studio.audio.dsp import OUTPUT_RATE
from tts_studio.errors import InvalidRequest, StudioError
from tts_studio.services.speech import SpeechOrder
from tts_studio.studio import Services
from tts_studio.text import split_sentences

log = logging.getLogger(__name__)
ATTRIBUTION = Attribution(name="TTS Studio", url="https://pypi.org/project/hibari-tts/")
DEFAULT_VOICE = "alloy"
CHUNK_BYTES = 4096  # 2048 samples of 16-bit mono per audio-chunk event


def _next(iterator: Generator[bytes, None, None]) -> bytes | None:
    return next(iterator, None)


class StudioHandler(AsyncEventHandler):
    """One Wyoming connection."""

    def __init__(self, server: WyomingServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.services = server.services
        self.slots = server.services.speech_slots
        self.transcription_slots = server.services.transcription_slots
        self.model = server.services.settings.wyoming_model
        self._streaming: SynthesizeStart | None = None
        self._pending = ""  # streamed text not yet spoken (an unfinished sentence)
        self._started_audio = False
        self._asr: Transcribe | None = None
        self._pcm = bytearray()
        self._pcm_format: AudioStart | None = None

    async def handle_event(self, event: Event) -> bool:
        try:
            await self._dispatch(event)
        except StudioError as exc:
            await self.write_event(Error(text=exc.message, code=exc.code or "error").event())
        except Exception:
            log.exception("Wyoming request failed")
            await self.write_event(
                Error(text="The studio had an internal error; see its log.", code="internal").event()
            )
        return True  # keep the connection: an error is an event, never a dropped socket

    async def _dispatch(self, event: Event) -> None:
        if Describe.is_type(event.type):
            await self.write_event(describe(self.services, self.model).event())
        elif SynthesizeStart.is_type(event.type):
            self._streaming, self._pending, self._started_audio = SynthesizeStart.from_event(event), "", False
        elif SynthesizeChunk.is_type(event.type) and self._streaming is not None:
            self._pending += SynthesizeChunk.from_event(event).text
            sentences = split_sentences(self._pending)
            if len(sentences) > 1:  # the last one may still be growing
                last = sentences[-1]
                self._pending = self._pending[self._pending.rfind(last) :] if last in self._pending else last
                await self._speak(" ".join(sentences[:-1]), self._streaming.voice, stop=False)
        elif SynthesizeStop.is_type(event.type) and self._streaming is not None:
            voice, rest = self._streaming.voice, self._pending.strip()
            self._streaming, self._pending = None, ""
            if rest or not self._started_audio:
                await self._speak(rest or " ", voice, stop=True, allow_empty=not rest)
            else:
                await self.write_event(AudioStop().event())
            await self.write_event(SynthesizeStopped().event())
        elif Synthesize.is_type(event.type):
            if self._streaming is None:  # clients that stream also send this, for servers that do not
                synthesize = Synthesize.from_event(event)
                self._started_audio = False
                await self._speak(synthesize.text, synthesize.voice, stop=True)
        elif Transcribe.is_type(event.type):
            self._asr, self._pcm, self._pcm_format = Transcribe.from_event(event), bytearray(), None
        elif AudioStart.is_type(event.type):
            self._pcm, self._pcm_format = bytearray(), AudioStart.from_event(event)
        elif AudioChunk.is_type(event.type):
            chunk = AudioChunk.from_event(event)
            if self._pcm_format is None:
                self._pcm_format = AudioStart(rate=chunk.rate, width=chunk.width, channels=chunk.channels)
            self._pcm += chunk.audio
        elif AudioStop.is_type(event.type):
            await self._transcribe()

    def _voice_name(self, voice: Any) -> str:
        name = getattr(voice, "name", None)
        return str(name) if name else DEFAULT_VOICE

    async def _speak(self, text: str, voice: Any, *, stop: bool, allow_empty: bool = False) -> None:
        """Audio for `text` as it is made: audio-start once per reply, audio-chunk events, audio-stop at its end."""
        fmt = AudioStart(rate=OUTPUT_RATE, width=2, channels=1)
        if not self._started_audio:
            await self.write_event(fmt.event())
            self._started_audio = True
        if text.strip() or not allow_empty:
            order = SpeechOrder(model=self.model, input=text, voice=self._voice_name(voice))
            plan = await anyio.to_thread.run_sync(self.services.speech.plan, order)
            self.slots.take()
            audio = self.services.speech.speak([plan], "pcm")
            try:
                while (data := await anyio.to_thread.run_sync(_next, audio)) is not None:
                    for start in range(0, len(data), CHUNK_BYTES):
                        piece = data[start : start + CHUNK_BYTES]
                        await self.write_event(AudioChunk(rate=fmt.rate, width=2, channels=1, audio=piece).event())
            finally:
                await anyio.to_thread.run_sync(audio.close)
                self.slots.give_back()
        if stop:
            await self.write_event(AudioStop().event())
            self._started_audio = False

    async def _transcribe(self) -> None:
        fmt = self._pcm_format or AudioStart(rate=16000, width=2, channels=1)
        if fmt.width != 2:
            raise InvalidRequest("Only 16-bit audio can be transcribed.", code="unsupported_audio")
        samples = np.frombuffer(bytes(self._pcm[: len(self._pcm) // 2 * 2]), "<i2").astype(np.float32) / 32768
        if fmt.channels > 1:
            samples = samples[: len(samples) // fmt.channels * fmt.channels].reshape(-1, fmt.channels).mean(axis=1)
        language = (self._asr.language if self._asr else None) or "en"
        self._pcm, self._asr = bytearray(), None
        if len(samples) < fmt.rate // 20:
            await self.write_event(Transcript(text="").event())
            return
        with self.transcription_slots.held():
            audio = DecodedAudio(samples.astype(np.float32), fmt.rate, "pcm")
            result = await anyio.to_thread.run_sync(partial(self.services.transcriber.transcribe, audio, language))
        await self.write_event(Transcript(text=result.text, language=result.language).event())


def describe(services: Services, model: str) -> Info:
    """The TTS program (the voices the configured model's engine can speak) and the ASR program."""
    engine_id = services.speech.resolve_model(model)[0]
    voices = [
        TtsVoice(
            name=entry["id"],
            description=entry["name"] if entry["name"] != entry["id"] else None,
            attribution=ATTRIBUTION,
            installed=True,
            version=None,
            languages=[entry.get("language") or services.manager.info(engine_id).languages[0]],
        )
        for entry in services.voices.entries()
        if engine_id in entry["engines"]
    ]
    tts = TtsProgram(
        name="tts-studio", description=f"TTS Studio ({model} on {engine_id})", attribution=ATTRIBUTION,
        installed=True, version=__version__, voices=voices, supports_synthesize_streaming=True,
    )  # fmt: skip
    asr = AsrProgram(
        name="tts-studio-whisper", description="Whisper tiny.en (bundled)", attribution=ATTRIBUTION,
        installed=True, version=__version__,
        models=[AsrModel(name="whisper-tiny.en", description="Whisper tiny.en", attribution=ATTRIBUTION,
                         installed=True, version=None, languages=["en"])],
    )  # fmt: skip
    return Info(tts=[tts], asr=[asr])


class WyomingServer:
    """The TCP server, started and stopped by the app's lifespan."""

    def __init__(self, services: Services) -> None:
        self.services = services
        settings = services.settings
        self.host = settings.wyoming_host or settings.host
        assert settings.wyoming_port is not None
        self.port = settings.wyoming_port
        self._server = AsyncTcpServer(self.host, self.port)
        self.running = False

    def _handler(self, *args: Any, **kwargs: Any) -> StudioHandler:
        return StudioHandler(self, *args, **kwargs)

    async def start(self) -> bool:
        """Listen; a busy port is logged, not fatal: the HTTP studio still starts."""
        try:
            await self._server.start(self._handler)
        except OSError as exc:
            log.error("The Wyoming server cannot listen on %s:%d (%s); it is off.", self.host, self.port, exc.strerror)
            return False
        self.running = True
        log.info("Wyoming server on tcp://%s:%d (Home Assistant: Wyoming Protocol integration)", self.host, self.port)
        return True

    async def stop(self) -> None:
        if self.running:
            self.running = False
            await self._server.stop()
