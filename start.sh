#!/usr/bin/env bash
# Start TTS Studio: creates .venv on first run, installs the studio, then serves on http://127.0.0.1:8600.
# Arguments go to `tts-studio serve` (e.g. ./start.sh --port 9000).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "Python 3.11 or newer is needed: install it from https://www.python.org/downloads/ and run me again." >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "First run: creating .venv and installing TTS Studio (a minute or two)..."
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.tts-studio-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
    touch "$stamp"
fi
exec .venv/bin/python -m tts_studio serve "$@"
