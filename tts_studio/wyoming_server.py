"""The Wyoming protocol (Home Assistant) on the studio's own services: `describe`, `synthesize` (and the
streaming `synthesize-start/-chunk/-stop`, spoken sentence by sentence), `transcribe` + audio. Runs as a
TCP server inside the same process and event loop; speech is one admitted speech job (services/job.py), as
on HTTP, sharing its admission limit. Wyoming has no authentication: bind it to loopback unless the network
is trusted.

Every connection is bounded: an event header of 64 KiB, event data of 1 MiB, 25 MiB of audio to transcribe
(as an HTTP upload), streamed text spoken once it reaches the input limit, and a client that reads nothing
for `client_stall_seconds` is dropped. A malformed event gets an `error` event and the connection goes on.
A connection that ends (closed, reset, stalled) cancels and closes its job at once: slot, lease and thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

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
from tts_studio.audio.decode import DecodedAudio, pcm16_to_float
from tts_studio.audio.dsp import OUTPUT_RATE
from tts_studio.errors import InvalidRequest, PayloadTooLarge, StudioError
from tts_studio.services.job import SpeechJob
from tts_studio.services.speech import SpeechOrder
from tts_studio.services.transcription import Transcript as StudioTranscript
from tts_studio.studio import Services
from tts_studio.text import split_long, split_sentences
from tts_studio.wyoming_events import (
    INVALID,
    MAX_PCM_BYTES,
    audio_format,
    json_object,
    length,
    optional_string,
    string,
    too_much_audio,
    voice_name,
)
from tts_studio.wyoming_zeroconf import Announcement, announce

log = logging.getLogger(__name__)
T = TypeVar("T")
ATTRIBUTION = Attribution(name="TTS Studio", url="https://pypi.org/project/hibari-tts/")
CHUNK_BYTES = 4096  # 2048 samples of 16-bit mono per audio-chunk event
MAX_DATA_BYTES = 1024 * 1024  # an event's JSON data (a synthesize text far over any input limit fits)
SKIP_BYTES = 64 * 1024  # what is refused is read past in pieces this size, never held
MAX_ERROR_CHARS = 1000  # an error event's text (it may quote what the client sent)
AUDIO_CHUNK = "audio-chunk"


class ClientGone(Exception):
    """The client closed, reset or stopped reading: the connection ends."""


class _Thread:
    """One thread for one task's blocking steps, in order, ending with it: nothing pooled outlives a client."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="wyoming")

    async def run(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def end(self) -> None:
        """The thread ends once what was handed to it has run (never waits)."""
        self._pool.shutdown(wait=False)


class StudioHandler(AsyncEventHandler):
    """One Wyoming connection: events are read with bounds, handled in order, answered or refused."""

    def __init__(self, server: WyomingServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer)
        self.services = server.services
        settings = self.services.settings
        self.model = settings.wyoming_model
        self.max_chars = settings.max_input_chars
        self.stall = settings.client_stall_seconds
        self.finished = asyncio.Event()
        self._job: SpeechJob | None = None  # the job in flight: cancelled as soon as the connection is lost
        self._streaming: str | None = None  # the voice of an open synthesize-start ... synthesize-stop
        self._pending = ""  # streamed text not yet spoken (an unfinished sentence, under the input limit)
        self._started_audio = False
        self._language: str | None = None
        self._pcm = bytearray()
        self._pcm_format: AudioStart | None = None
        self._pcm_refused = False  # this audio stream was answered with an error: the rest is dropped

    # -- the connection --------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Events until the client leaves, then everything it held is let go."""
        self._is_running = True
        watcher = asyncio.create_task(self._watch())
        try:
            while self._is_running:
                try:
                    incoming = await self._read()
                except StudioError as exc:  # malformed or too large, and read past: the next event follows
                    if not await self._answer(exc):
                        break
                    continue
                if incoming is None or not await self._handle(*incoming):
                    break
        finally:
            await self.disconnect()
            self.writer.close()
            try:  # a client that reads nothing keeps unsent bytes: it does not keep the socket
                await asyncio.wait_for(asyncio.shield(watcher), self.stall)
            except TimeoutError:
                self.writer.transport.abort()
                await watcher
            self.finished.set()

    async def _watch(self) -> None:
        """Cancel the job in flight as soon as the connection is lost (reset, closed, aborted)."""
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
        if self._job is not None:
            self._job.cancel()

    async def disconnect(self) -> None:
        """The client is gone: a job still in flight is cancelled and closed (slot, lease, temp files)."""
        job, self._job = self._job, None
        self._pcm, self._pending = bytearray(), ""
        if job is not None:
            job.cancel()
            await job.aclose()

    async def stop(self) -> None:
        """The server stops: the job in flight ends now, then the connection."""
        if self._job is not None:
            self._job.cancel()
        await super().stop()

    async def _send(self, event: Event) -> None:
        """Write one event; a client gone, or not reading for `client_stall_seconds`, ends the connection."""
        if self.writer.is_closing():
            raise ClientGone
        try:
            async with asyncio.timeout(self.stall):
                await self.write_event(event)
        except TimeoutError:
            self.writer.transport.abort()  # drop what it did not read; the watcher cancels the job
            raise ClientGone from None
        except OSError:
            raise ClientGone from None

    async def _answer(self, exc: StudioError) -> bool:
        """An `error` event; False when the client is gone."""
        text = exc.message[:MAX_ERROR_CHARS].encode("utf-8", "replace").decode("utf-8")
        try:
            await self._send(Error(text=text, code=exc.code or "error").event())
        except ClientGone:
            return False
        return True

    # -- reading: bounded, validated -------------------------------------------------------------------------
    async def _read(self) -> tuple[Event, int] | None:
        """The next event and how many bytes of its payload were refused (read past, never held); None at
        the end. A malformed event raises once its bytes are consumed."""
        try:
            line = await self._line()
            if line is None:
                return None
            header = json_object(line, "the event header")
            data_length, payload_length = length(header, "data_length"), length(header, "payload_length")
            kind = header.get("type")
            extra = await self._take(data_length, MAX_DATA_BYTES)
            payload = await self._take(payload_length, self._audio_room() if kind == AUDIO_CHUNK else 0)
        except (asyncio.IncompleteReadError, OSError):
            return None
        if extra is None:
            raise PayloadTooLarge(f"An event's data is {data_length} bytes; the limit is {MAX_DATA_BYTES}.")
        if not isinstance(kind, str) or not kind:
            raise InvalidRequest("An event needs a 'type' (a string).", code=INVALID)
        data = header.get("data", {})
        if not isinstance(data, dict):
            raise InvalidRequest(f"The data of '{kind}' must be a JSON object.", code=INVALID)
        if extra:
            more = json_object(extra, f"the data of '{kind}'")
            data = {**data, **more}
        refused = payload_length if payload is None and kind == AUDIO_CHUNK else 0  # other payloads: unused
        return Event(type=kind, data=data, payload=payload or None), refused

    async def _line(self) -> bytes | None:
        """The header line; one longer than the reader's limit (64 KiB) is read past and refused."""
        try:
            return await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError:
            pass
        while True:
            try:
                await self.reader.readuntil(b"\n")
                break
            except asyncio.LimitOverrunError as exc:
                await self.reader.readexactly(exc.consumed)
        raise PayloadTooLarge("An event header is longer than 64 KiB.")

    async def _take(self, length: int, limit: int) -> bytes | None:
        """`length` bytes, or None when over `limit`: then they are read past in pieces, never held."""
        if length <= limit:
            return await self.reader.readexactly(length) if length else b""
        while length > 0:
            piece = await self.reader.read(min(length, SKIP_BYTES))
            if not piece:
                raise asyncio.IncompleteReadError(b"", length)
            length -= len(piece)
        return None

    # -- handling --------------------------------------------------------------------------------------------
    async def _handle(self, event: Event, refused: int) -> bool:
        if not refused:
            return await self.handle_event(event)
        if self._pcm_refused:
            return True  # more of a stream already answered
        self._drop_audio()
        return await self._answer(too_much_audio())

    async def handle_event(self, event: Event) -> bool:
        try:
            await self._dispatch(event)
        except ClientGone:
            return False
        except StudioError as exc:
            return await self._answer(exc)
        except Exception:
            log.exception("Wyoming request failed")
            return await self._answer(StudioError("The studio had an internal error; see its log.", code="internal"))
        return True  # keep the connection: an error is an event, never a dropped socket

    async def _dispatch(self, event: Event) -> None:
        kind, data = event.type, event.data
        if Describe.is_type(kind):
            info = await anyio.to_thread.run_sync(describe, self.services, self.model)  # reads the voice folder
            await self._send(info.event())
        elif SynthesizeStart.is_type(kind):
            voice = voice_name(data)
            if self._started_audio:  # a new stream before the last one stopped: close its audio
                await self._send(AudioStop().event())
            self._streaming, self._pending, self._started_audio = voice, "", False
        elif SynthesizeChunk.is_type(kind):
            text = string(data, "text")
            if self._streaming is None:
                raise InvalidRequest("'synthesize-chunk' came before 'synthesize-start'.", code="unexpected_event")
            await self._stream_text(text, self._streaming)
        elif SynthesizeStop.is_type(kind):
            if self._streaming is None:
                raise InvalidRequest("'synthesize-stop' came before 'synthesize-start'.", code="unexpected_event")
            await self._stop_stream(self._streaming)
        elif Synthesize.is_type(kind):
            if self._streaming is None:  # clients that stream also send this, for servers that do not
                text, voice = string(data, "text"), voice_name(data)
                self._started_audio = False
                await self._speak([text], voice, stop=True)
        elif Transcribe.is_type(kind):
            language = optional_string(data, "language")
            self._language, self._pcm, self._pcm_format, self._pcm_refused = language, bytearray(), None, False
        elif AudioStart.is_type(kind):
            self._pcm, self._pcm_format, self._pcm_refused = bytearray(), None, False
            self._pcm_format = self._audio_format(data)
        elif AudioChunk.is_type(kind):
            self._audio_chunk(data, event.payload or b"")
        elif AudioStop.is_type(kind):
            await self._transcribe()

    # -- speech ----------------------------------------------------------------------------------------------
    async def _stream_text(self, text: str, voice: str) -> None:
        """Speak each sentence once it is complete; text with no sentence end is spoken at the input limit."""
        self._pending += text
        sentences = split_sentences(self._pending)
        if len(sentences) > 1:  # the last one may still be growing
            last = sentences[-1]
            self._pending = self._pending[self._pending.rfind(last) :] if last in self._pending else last
            await self._speak(self._batches(sentences[:-1]), voice, stop=False)
        if len(self._pending) > self.max_chars:  # cut at a clause, else a space; the rest waits
            text = self._pending.rstrip()
            parts = split_long(text.lstrip(), self.max_chars)
            self._pending = parts[-1] + self._pending[len(text) :]  # a trailing space still parts two words
            await self._speak(parts[:-1], voice, stop=False)

    async def _stop_stream(self, voice: str) -> None:
        rest = self._pending.strip()
        self._streaming, self._pending = None, ""
        if rest:
            await self._speak(self._batches([rest]), voice, stop=True)
        else:
            if not self._started_audio:
                await self._send(AudioStart(rate=OUTPUT_RATE, width=2, channels=1).event())
            await self._send(AudioStop().event())
            self._started_audio = False
        await self._send(SynthesizeStopped().event())

    def _batches(self, sentences: list[str]) -> list[str]:
        """Sentences joined into texts within the input limit (a longer one cut at clauses, then spaces)."""
        batches: list[str] = []
        for piece in (part for sentence in sentences for part in split_long(sentence, self.max_chars)):
            if batches and len(batches[-1]) + 1 + len(piece) <= self.max_chars:
                batches[-1] = f"{batches[-1]} {piece}"
            else:
                batches.append(piece)
        return batches

    async def _speak(self, texts: list[str], voice: str, *, stop: bool) -> None:
        """`texts` as one job: audio-start once per reply, audio-chunk events as made, audio-stop at its end.
        Invalid text is an error before any audio; the job ends with the connection."""
        if not texts:
            return
        job = self.services.jobs.admit()  # 429 before anything with a cost
        thread = _Thread()
        self._job = job
        try:
            plans = []
            for text in texts:
                order = SpeechOrder(model=self.model, input=text, voice=voice)
                plans.append(await thread.run(partial(job.speech.plan, order)))
            job.start(plans, "pcm")
            if not self._started_audio:
                await self._send(AudioStart(rate=OUTPUT_RATE, width=2, channels=1).event())
                self._started_audio = True
            while not self.writer.is_closing() and (data := await thread.run(job.next)) is not None:
                for start in range(0, len(data), CHUNK_BYTES):
                    piece = data[start : start + CHUNK_BYTES]
                    await self._send(AudioChunk(rate=OUTPUT_RATE, width=2, channels=1, audio=piece).event())
        finally:
            job.cancel()
            try:  # on this job's thread, after a step in flight; it runs even if this task is cancelled
                await asyncio.shield(thread.run(job.close))
            finally:
                thread.end()
                self._job = None
        if stop:
            await self._send(AudioStop().event())
            self._started_audio = False

    # -- transcription ---------------------------------------------------------------------------------------
    def _audio_room(self) -> int:
        """Bytes of audio this stream may still send (none once refused): more is never read into memory."""
        return 0 if self._pcm_refused else MAX_PCM_BYTES - len(self._pcm)

    def _drop_audio(self) -> None:
        """This audio stream was answered with an error: it is dropped, and its later chunks too."""
        self._pcm, self._pcm_refused = bytearray(), True

    def _audio_format(self, data: dict[str, Any]) -> AudioStart:
        try:
            return audio_format(data)
        except StudioError:
            self._drop_audio()
            raise

    def _audio_chunk(self, data: dict[str, Any], audio: bytes) -> None:
        if self._pcm_refused:
            return  # the rest of a refused stream: already answered
        fmt = self._audio_format(data)
        if self._pcm_format is None:
            self._pcm_format = fmt
        elif fmt != self._pcm_format:
            self._drop_audio()
            raise InvalidRequest("An audio-chunk's format differs from its audio-start.", code=INVALID)
        if len(self._pcm) + len(audio) > MAX_PCM_BYTES:
            self._drop_audio()
            raise too_much_audio()
        self._pcm += audio

    async def _transcribe(self) -> None:
        pcm, fmt, language = self._pcm, self._pcm_format or AudioStart(16000, 2, 1), self._language or "en"
        refused, self._pcm_refused = self._pcm_refused, False
        self._pcm, self._pcm_format, self._language = bytearray(), None, None
        if refused:
            return  # already answered with an error
        if len(pcm) // (fmt.width * fmt.channels) < fmt.rate // 20:
            await self._send(Transcript(text="").event())
            return
        thread = _Thread()
        try:
            with self.services.transcription_slots.held():
                result = await thread.run(partial(self._whisper, bytes(pcm), fmt, language))
        finally:
            thread.end()
        await self._send(Transcript(text=result.text, language=result.language).event())

    def _whisper(self, pcm: bytes, fmt: AudioStart, language: str) -> StudioTranscript:
        samples = pcm16_to_float(pcm)
        if fmt.channels > 1:
            samples = samples[: len(samples) // fmt.channels * fmt.channels].reshape(-1, fmt.channels).mean(axis=1)
        audio = DecodedAudio(samples.astype(np.float32), fmt.rate, "pcm")
        return self.services.transcriber.transcribe(audio, language)


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
        name="tts-studio",
        description=f"TTS Studio ({model} on {engine_id})",
        attribution=ATTRIBUTION,
        installed=True,
        version=__version__,
        voices=voices,
        supports_synthesize_streaming=True,
    )
    asr = AsrProgram(
        name="tts-studio-whisper",
        description="Whisper tiny.en (bundled)",
        attribution=ATTRIBUTION,
        installed=True,
        version=__version__,
        models=[
            AsrModel(
                name="whisper-tiny.en",
                description="Whisper tiny.en",
                attribution=ATTRIBUTION,
                installed=True,
                version=None,
                languages=["en"],
            )
        ],
    )
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
        self._handlers: weakref.WeakSet[StudioHandler] = weakref.WeakSet()
        self.running = False
        self._announcement: Announcement | None = None

    def _handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> StudioHandler:
        handler = StudioHandler(self, reader, writer)
        self._handlers.add(handler)
        return handler

    async def start(self) -> bool:
        """Listen; a busy port is logged, not fatal: the HTTP studio still starts."""
        try:
            await self._server.start(self._handler)
        except OSError as exc:
            log.error("The Wyoming server cannot listen on %s:%d (%s); it is off.", self.host, self.port, exc.strerror)
            return False
        self.running = True
        log.info("Wyoming server on tcp://%s:%d (Home Assistant: Wyoming Protocol integration)", self.host, self.port)
        if self.services.settings.wyoming_zeroconf:  # beyond loopback, Home Assistant discovers it
            self._announcement = announce(self.host, self.port)
        return True

    async def stop(self) -> None:
        """Stop listening and end every connection; their jobs are closed before the engines unload."""
        if self._announcement is not None:  # withdrawn first: Home Assistant stops offering it
            announcement, self._announcement = self._announcement, None
            await announcement.withdraw()
        if self.running:
            self.running = False
            await self._server.stop()
            handlers = list(self._handlers)
            with anyio.move_on_after(10):
                await asyncio.gather(*(handler.finished.wait() for handler in handlers))
