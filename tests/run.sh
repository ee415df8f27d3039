#!/usr/bin/env bash
# The test command: sets everything up on a fresh machine (venv, packages), then lints, type-checks
# and runs the test suite. Extra arguments go to pytest, e.g. `bash tests/run.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${TTS_STUDIO_VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
echo "== installing tts-studio[test]"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check uv
"$VENV/bin/python" -m uv pip install --quiet --python "$VENV/bin/python" -e ".[test]"

echo "== ruff"
"$VENV/bin/ruff" check tts_studio tests bench voices docs
"$VENV/bin/ruff" format --check tts_studio tests bench voices docs
echo "== mypy"
"$VENV/bin/mypy"
echo "== pytest"
exec "$VENV/bin/python" -m pytest "$@"
