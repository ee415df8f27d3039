#!/usr/bin/env bash
# The test command: sets everything up on a fresh machine (venvs, packages, Debian chromium, node, podman), then
# lints, type-checks and runs the suite: the core tests in .venv; the UI tests again under the Gradio that
# `tts-studio[chatterbox]` resolves to (chatterbox-tts pins gradio 6.8.0) in .venv-gradio-pinned; then the
# engines group (real chatterbox-tts and voxcpm on random-weight checkpoints) in .venv-engines, and the Ray group
# (the studio on a two-node Ray cluster on loopback; needs `unshare`, run as root as CI does).
# Extra arguments go to the core pytest run.
#   TTS_STUDIO_SKIP_ENGINES=1   skips the engines group and the chat tests' LLM server (about 3 GB of disk and
#                               3 minutes to install)
#   TTS_STUDIO_SETUP_ONLY=1     installs .venv and stops (the launcher test uses it)
# Works on a .venv made by ./start.sh (uv: no pip inside) or by venv + pip.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${TTS_STUDIO_VENV:-.venv}
PINNED_GRADIO=6.8.0   # what chatterbox-tts==0.1.7 (our chatterbox extra) pins

find_uv() {
    if command -v uv >/dev/null 2>&1; then command -v uv; return 0; fi
    if [ ! -x .tools/uvenv/bin/uv ]; then
        "$PYTHON" -m venv .tools/uvenv >/dev/null 2>&1 && .tools/uvenv/bin/python -m pip install -q uv >/dev/null 2>&1 \
            || return 1
    fi
    echo .tools/uvenv/bin/uv
}

# install_into VENV ARGS...: uv when there is one, else the venv's own pip (made available if missing)
install_into() {
    local venv=$1; shift
    [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
    if [ -n "$UV" ]; then
        "$UV" pip install --quiet --python "$venv/bin/python" "$@"
    else
        "$venv/bin/python" -m pip --version >/dev/null 2>&1 || "$venv/bin/python" -m ensurepip --upgrade >/dev/null
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
    fi
}

UV=$(find_uv) || UV=""
echo "== installing tts-studio[test] into $VENV${UV:+ (uv)}"
install_into "$VENV" -e ".[test]"
if [ "${TTS_STUDIO_SETUP_ONLY:-0}" = "1" ]; then exit 0; fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    missing=()
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    command -v podman >/dev/null 2>&1 || missing+=(podman)        # the container image test (slow)
    command -v runc >/dev/null 2>&1 || missing+=(runc)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    command -v ip >/dev/null 2>&1 || missing+=(iproute2)         # loopback up in the Ray group's namespace
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== installing Debian packages: ${missing[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi

# The two other venvs install (mostly download and unpack) while ruff and mypy run: one after the other (both
# build the editable install from this checkout), in the background.
logs=$(mktemp -d)
background=()
trap 'kill "${background[@]}" 2>/dev/null || true; rm -rf "$logs"' EXIT
echo "== in the background: gradio-pinned venv (gradio==$PINNED_GRADIO), then the engines venv (also the chat tests'"
echo "   LLM server: transformers serve)"
(
    install_into .venv-gradio-pinned -e ".[test]" "gradio==$PINNED_GRADIO"
    if [ "${TTS_STUDIO_SKIP_ENGINES:-0}" != "1" ]; then bash tests/engines/setup_venv.sh; fi
) >"$logs/venvs.log" 2>&1 &
venvs_pid=$!; background+=("$venvs_pid")

echo "== ruff"
"$VENV/bin/ruff" check tts_studio tests bench voices docs
"$VENV/bin/ruff" format --check tts_studio tests bench voices docs
echo "== mypy"
"$VENV/bin/mypy"
if ! wait "$venvs_pid"; then
    echo "== installing the venvs failed:"; cat "$logs/venvs.log"; exit 1
fi
if [ "${TTS_STUDIO_SKIP_ENGINES:-0}" != "1" ]; then export TTS_STUDIO_REQUIRE_LLM=1; fi

# The install-path tests (start.sh on a fresh copy with uv and with pip, the container image) mostly wait on
# package installs: they run beside the core run, in their own pytest, and their report follows it.
SIDE_TESTS=(tests/test_launcher.py tests/test_docker.py)
side_log=$logs/side.log
echo "== pytest (install paths, beside the core run: ${SIDE_TESTS[*]})"
"$VENV/bin/python" -m pytest -p no:cacheprovider "${SIDE_TESTS[@]}" >"$side_log" 2>&1 &
side_pid=$!; background+=("$side_pid")
echo "== pytest (core)"
core_rc=0
"$VENV/bin/python" -m pytest "${SIDE_TESTS[@]/#/--ignore=}" "$@" || core_rc=$?
side_rc=0
wait "$side_pid" || side_rc=$?
echo "== pytest (install paths): report"
cat "$side_log"
if [ "$core_rc" != 0 ] || [ "$side_rc" != 0 ]; then exit 1; fi

echo "== pytest (UI under gradio==$PINNED_GRADIO, as tts-studio[chatterbox] resolves it)"
.venv-gradio-pinned/bin/python -m pytest -p no:cacheprovider tests/test_ui_browser.py tests/test_browser_guard.py \
    tests/test_ui_client.py tests/test_guard.py

if [ "${TTS_STUDIO_SKIP_ENGINES:-0}" != "1" ]; then
    echo "== pytest (engines)"
    .venv-engines/bin/python -m pytest tests/engines -p no:cacheprovider -W ignore::DeprecationWarning \
        -W ignore::FutureWarning -W ignore::UserWarning
    # A real two-node Ray cluster on loopback, in a network namespace of its own with only `lo`: Ray's servers
    # listen on every interface whatever address they are given.
    echo "== pytest (Ray: a two-node cluster on loopback, under unshare -n)"
    TTS_STUDIO_REQUIRE_RAY=1 unshare -n sh -c 'ip link set lo up && exec .venv-engines/bin/python -m pytest \
        tests/ray -p no:cacheprovider -W ignore::DeprecationWarning -W ignore::FutureWarning -W ignore::UserWarning'
fi
