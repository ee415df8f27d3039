"""TTS Studio on a Ray Serve cluster (`tts-studio serve --ray`, extra `tts-studio[ray]`): the same app on ingress
replicas, each engine and Whisper as their own deployments. Nothing here imports ray at module import."""
