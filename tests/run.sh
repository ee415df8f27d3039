#!/usr/bin/env bash
# The test command: sets everything up on a fresh machine (venvs, packages), then lints, type-checks and
# runs the suite: the core tests in .venv, then the engines group (real chatterbox-tts and voxcpm on
# random-weight checkpoints) in .venv-engines. Extra arguments go to the core pytest run.
# TTS_STUDIO_SKIP_ENGINES=1 skips the engines group (it needs about 3 GB of disk and 3 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${TTS_STUDIO_VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "== installing Debian chromium for the browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
echo "== installing tts-studio[test]"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check uv
"$VENV/bin/python" -m uv pip install --quiet --python "$VENV/bin/python" -e ".[test]"

echo "== ruff"
"$VENV/bin/ruff" check tts_studio tests bench voices docs
"$VENV/bin/ruff" format --check tts_studio tests bench voices docs
echo "== mypy"
"$VENV/bin/mypy"
echo "== pytest (core)"
"$VENV/bin/python" -m pytest "$@"

if [ "${TTS_STUDIO_SKIP_ENGINES:-0}" != "1" ]; then
    echo "== engines venv"
    bash tests/engines/setup_venv.sh
    echo "== pytest (engines)"
    .venv-engines/bin/python -m pytest tests/engines -p no:cacheprovider -W ignore::DeprecationWarning \
        -W ignore::FutureWarning -W ignore::UserWarning
fi
