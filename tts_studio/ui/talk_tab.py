"""The Talk tab: type (or speak into the microphone), hear the reply, read the transcript. The reply comes
from the chat upstream when one is configured; without one, the tab speaks what you type. Same services
as /v1/realtime: Whisper for the microphone, SpokenReply (the one speech pipeline) for the answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import gradio as gr

from tts_studio.audio.decode import AudioLimits, decode_audio
from tts_studio.services.conversation import Audio, SpokenReply, fixed_text, llm_messages
from tts_studio.services.speech import SpeechOrder
from tts_studio.ui.context import Studio, error_text

REPLY_FORMAT = "mp3"
NO_UPSTREAM = (
    "**No chat model is connected**, so Talk speaks what you type. To talk to a local LLM, start the studio "
    "with `TTS_STUDIO_CHAT_UPSTREAM` set to an OpenAI-compatible server, e.g. "
    "`TTS_STUDIO_CHAT_UPSTREAM=http://127.0.0.1:11434/v1` for Ollama or `http://127.0.0.1:8080/v1` for llama.cpp."
)


def _history_turns(history: list[dict[str, Any]]) -> list[tuple[str, str]]:
    turns = []
    for message in history or []:
        content = message.get("content")
        if message.get("role") in ("user", "assistant") and isinstance(content, str) and content.strip():
            turns.append((message["role"], content))
    return turns


def build(studio: Studio) -> None:
    chat = studio.chat
    with gr.Row():
        with gr.Column(scale=3):
            status = f"Chat model: {chat.default_model or 'the upstream’s first'} at `{chat.base_url}`"
            gr.Markdown(status if chat.configured else NO_UPSTREAM, elem_id="talk-status")
            conversation = gr.Chatbot(label="Conversation", elem_id="talk-chat", height=360)
            message = gr.Textbox(
                label="Message",
                lines=2,
                elem_id="talk-text",
                placeholder="Say something…" if chat.configured else "Text to speak…",
            )
            mic = gr.Audio(sources=["microphone"], type="filepath", label="Or speak", elem_id="talk-mic")
            with gr.Row():
                send = gr.Button("Send" if chat.configured else "Speak this", variant="primary", elem_id="talk-send")
                clear = gr.Button("New conversation", elem_id="talk-clear")
        with gr.Column(scale=2):
            voice = gr.Dropdown(studio.voice_choices(), value="alloy", label="Voice", elem_id="talk-voice")
            reply_audio = gr.Audio(
                label="Reply", type="filepath", interactive=False, autoplay=True, elem_id="talk-audio"
            )
            info = gr.Markdown("", elem_id="talk-info")

    async def talk(text: str, recording: str | None, voice_: str, history: list[dict[str, Any]]) -> tuple[Any, ...]:
        history = list(history or [])
        try:
            said = (text or "").strip()
            if recording:
                said = await anyio.to_thread.run_sync(_transcribe, studio, recording)
            if not said:
                return history, gr.update(), gr.update(), None, "Type a message or record one first."
            turns = [*_history_turns(history), ("user", said)]
            source = chat.reply(llm_messages(None, turns)) if chat.configured else fixed_text(said)
            order = SpeechOrder(model=studio.settings.talk_model, input="", voice=voice_ or "alloy")
            reply = SpokenReply(studio.jobs, order, source, REPLY_FORMAT)
            audio = bytearray()
            try:
                async for item in reply.events():
                    if isinstance(item, Audio):
                        audio += item.data
            finally:
                await reply.aclose()
            answer = reply.spoken_text
            seconds = reply.progress.audio_seconds
            entry = await anyio.to_thread.run_sync(  # an fsync'd write: never on the event loop
                studio.history.add, bytes(audio), REPLY_FORMAT, answer, voice_, studio.settings.talk_model, seconds
            )
            history += [{"role": "user", "content": said}, {"role": "assistant", "content": answer}]
            path = str(studio.history.path(entry.id))
            return history, "", None, path, f"{seconds:.1f} s of audio"
        except Exception as exc:
            return history, gr.update(), gr.update(), None, f"⚠ {error_text(exc)}"

    outputs = [conversation, message, mic, reply_audio, info]
    send.click(talk, [message, mic, voice, conversation], outputs, api_name="talk")
    message.submit(talk, [message, mic, voice, conversation], outputs)
    clear.click(lambda: ([], None, ""), None, [conversation, reply_audio, info])


def _transcribe(studio: Studio, recording: str) -> str:
    data = Path(recording).read_bytes()
    audio = decode_audio(data, AudioLimits(max_bytes=25 * 1024 * 1024, max_seconds=600), param="audio")
    with studio.transcription_slots.held():
        # no language: detected with the multilingual Whisper, English without it
        return studio.transcriber.transcribe(audio, None).text.strip()
