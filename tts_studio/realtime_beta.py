"""The Realtime beta protocol (`OpenAI-Beta: realtime=v1`, older pipecat and livekit clients): the same
events under their beta names, and the session in its beta shape."""

from __future__ import annotations

from typing import Any

BETA_NAMES = {
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
    "conversation.item.added": "conversation.item.created",
}


def beta_session(session: dict[str, Any]) -> dict[str, Any]:
    audio = session["audio"]
    return {
        "id": session["id"],
        "object": "realtime.session",
        "model": session["model"],
        "modalities": ["text", "audio"] if "audio" in session["output_modalities"] else ["text"],
        "instructions": session["instructions"],
        "voice": audio["output"]["voice"],
        "input_audio_format": "pcm16",
        "output_audio_format": "pcm16",
        "turn_detection": None,
        "input_audio_transcription": audio["input"]["transcription"],
        "max_response_output_tokens": session["max_output_tokens"],
    }


def beta_event(event: dict[str, Any]) -> dict[str, Any]:
    """The same event in the beta protocol's names and session shape."""
    if event["type"] == "conversation.item.done":
        return {}  # the beta protocol has no such event
    event = {**event, "type": BETA_NAMES.get(event["type"], event["type"])}
    if "session" in event:
        event["session"] = beta_session(event["session"])
    return event
