#!/bin/sh
# Container entrypoint. The server binds 0.0.0.0 inside the container, so it must not run without an API
# key: one given (TTS_STUDIO_API_KEY or TTS_STUDIO_API_KEY_FILE), or one generated once into <data>/api-key
# and printed to the log (TTS_STUDIO_GENERATE_KEY=0 refuses to start instead). Host names other than
# localhost and IP addresses must be listed in TTS_STUDIO_ALLOWED_HOSTS (JSON), e.g. '["nas.local"]'.
set -eu
if [ -z "${TTS_STUDIO_API_KEY:-}" ] && [ -z "${TTS_STUDIO_API_KEY_FILE:-}" ]; then
    key_file="${TTS_STUDIO_DATA_DIR:-/data}/api-key"
    if [ ! -s "$key_file" ]; then
        if [ "${TTS_STUDIO_GENERATE_KEY:-1}" != "1" ]; then
            echo "TTS Studio: set TTS_STUDIO_API_KEY (or TTS_STUDIO_API_KEY_FILE): the container listens on all interfaces." >&2
            exit 64
        fi
        umask 077
        python -c "import secrets; print('sk-studio-' + secrets.token_urlsafe(24))" > "$key_file"
        echo "TTS Studio: generated an API key in $key_file (shown once): $(cat "$key_file")" >&2
    fi
    TTS_STUDIO_API_KEY_FILE="$key_file"
    export TTS_STUDIO_API_KEY_FILE
fi
exec tts-studio "$@"
