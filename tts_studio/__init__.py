"""TTS Studio: a local, private text-to-speech studio with an OpenAI-compatible API."""

__version__ = "0.1.0"
