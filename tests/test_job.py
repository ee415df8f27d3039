"""The one speech job, in process (no sockets): admission first, cancel from any thread, one idempotent close
that frees slot and lease on every path, and a fed reply that holds its engine only while text is ready.
The engine double forces the interleavings with events."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from tests.conftest import make_settings
from tests.doubles import Script, double_info, registry_with, wait_for
from tts_studio.errors import TooManyRequests
from tts_studio.services.conversation import Audio, SpokenReply
from tts_studio.services.plan import SpeechOrder
from tts_studio.studio import Services, build_services

ENGINE = "double"


@pytest.fixture
def script() -> Script:
    return Script(pieces=4)


@pytest.fixture
def studio(tmp_path: Path, script: Script) -> Iterator[Services]:
    settings = make_settings(tmp_path, max_active_requests=2, model_map={"tts-1": [ENGINE]})
    services = build_services(settings, registry_with((double_info(ENGINE), script), core=False))
    yield services
    services.manager.unload_all(timeout=1)


def _order(text: str = "One sentence here. And a second one.") -> SpeechOrder:
    return SpeechOrder(model=ENGINE, input=text, voice="heart")


def _idle(studio: Services) -> bool:
    return studio.speech_slots.active == 0 and studio.manager.in_use(ENGINE) == 0


def test_admission_comes_first_and_a_full_studio_says_429(studio: Services) -> None:
    held = [studio.jobs.admit(), studio.jobs.admit()]
    with pytest.raises(TooManyRequests):
        studio.jobs.admit()
    for job in held:
        job.close()
        job.close()  # idempotent: the slot comes back once
    assert studio.speech_slots.active == 0
    assert not studio.manager.is_loaded(ENGINE)  # nothing with a cost happened for the refused one


def test_a_job_cancelled_before_its_first_byte_frees_everything(studio: Services) -> None:
    job = studio.jobs.admit()
    job.start([studio.speech.plan(_order())], "mp3")
    job.cancel()
    assert job.next() is None
    job.close()
    assert _idle(studio)


def test_close_while_a_step_is_in_flight_waits_for_it_and_frees_everything(studio: Services, script: Script) -> None:
    job = studio.jobs.admit()
    job.start([studio.speech.plan(_order())], "pcm")
    assert job.next()  # the first piece
    script.gate.clear()  # the next piece waits inside the engine
    stepped = threading.Event()
    results: list[bytes | None] = []

    def step() -> None:
        stepped.set()
        while (data := job.next()) is not None:
            results.append(data)

    consumer = threading.Thread(target=step)
    consumer.start()
    assert stepped.wait(10)
    wait_for(lambda: script.pieces_made >= 2 or studio.manager.in_use(ENGINE) == 1)
    closer = threading.Thread(target=job.close)  # from another thread, mid-step
    closer.start()
    script.gate.set()  # the engine finishes its piece; the job stops there
    closer.join(30)
    consumer.join(30)
    assert not closer.is_alive() and not consumer.is_alive()
    assert script.stream_closed.is_set()
    wait_for(lambda: _idle(studio))
    assert script.pieces_made < 8  # it stopped within a piece, not at the end of the text


def test_a_fed_reply_holds_no_engine_while_the_llm_writes(studio: Services) -> None:
    more = anyio.Event()
    leases: list[int] = []

    async def llm() -> AsyncIterator[str]:
        yield "The first sentence is ready. "
        await more.wait()
        yield "And here is the second one."

    async def go() -> None:
        reply = SpokenReply(studio.jobs, _order(""), llm(), "pcm")

        def first_sentence_spoken() -> None:
            wait_for(lambda: reply.job is not None and reply.progress.chunks_done == 1, timeout=30)
            wait_for(lambda: studio.manager.in_use(ENGINE) == 0, timeout=10)

        async def watch() -> None:
            try:
                await anyio.to_thread.run_sync(first_sentence_spoken)
            except AssertionError:
                pass  # the lease was kept: recorded below, and the reply goes on
            finally:
                leases.append(studio.manager.in_use(ENGINE))  # the LLM is still writing: no lease held
                more.set()

        audio = 0
        events = reply.events()
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(watch)
                async for item in events:
                    if isinstance(item, Audio):
                        audio += len(item.data)
        finally:
            await reply.aclose()
            await events.aclose()
        assert audio > 0 and reply.spoken_text.endswith("second one.")

    anyio.run(go)
    assert leases == [0]
    assert _idle(studio)
