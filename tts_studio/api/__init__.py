"""The HTTP API: OpenAI-compatible routes over the service layer."""
