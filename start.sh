#!/usr/bin/env bash
# TTS Studio launcher for Linux (macOS: start.command runs this). Double-click or run ./start.sh.
#
# First run: creates .venv (with uv when it can, plain venv + pip otherwise) and installs the studio;
# later runs skip the install unless something changed. Then it starts the server and opens the browser
# once the studio answers; if it is already running, it just opens the browser.
#
#   ./start.sh [--no-browser] [--engines chatterbox,voxcpm] [--reinstall] [serve flags, e.g. --port 9000]
#
# TTS_STUDIO_ENGINES=chatterbox,voxcpm (or --engines) also installs the GPU engines; with an NVIDIA GPU
# (nvidia-smi) torch comes from the matching CUDA build (uv --torch-backend auto). No questions asked.
set -euo pipefail
cd "$(dirname "$0")"

open_browser=--open-browser
engines=${TTS_STUDIO_ENGINES:-}
reinstall=0
serve_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-browser) open_browser="" ;;
        --engines) engines="$2"; shift ;;
        --engines=*) engines="${1#--engines=}" ;;
        --reinstall) reinstall=1 ;;
        *) serve_args+=("$1") ;;
    esac
    shift
done

if [ "$(uname)" = Darwin ]; then log_dir="$HOME/Library/Logs/TTSStudio"; else
    log_dir="${XDG_STATE_HOME:-$HOME/.local/state}/TTSStudio/log"; fi
mkdir -p "$log_dir"
install_log="$log_dir/install.log"

say() { printf '\033[1m%s\033[0m\n' "$*"; }
fail() { printf '\033[31m%s\033[0m\n' "$*" >&2; [ -t 0 ] && read -r -p "Press Enter to close." _; exit 1; }

find_python() {
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 14) else 1)' 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    return 1
}
python=$(find_python) || fail "Python 3.11, 3.12 or 3.13 is needed. Install it (https://www.python.org/downloads/ or your package manager) and run me again."

# uv: on PATH, else a private copy in .tools (installed from PyPI with pip); plain pip if neither works.
# TTS_STUDIO_NO_UV=1 forces plain venv + pip (the launcher test covers both paths).
uv=""
if [ "${TTS_STUDIO_NO_UV:-0}" = 1 ]; then uv=""
elif command -v uv >/dev/null 2>&1; then uv=uv
elif [ -x .tools/uvenv/bin/uv ]; then uv=.tools/uvenv/bin/uv
elif "$python" -m venv .tools/uvenv >>"$install_log" 2>&1 && .tools/uvenv/bin/python -m pip install -q uv >>"$install_log" 2>&1; then
    uv=.tools/uvenv/bin/uv
fi

extras=""
[ -n "$engines" ] && extras="[$(echo "$engines" | tr -d ' ')]"
gpu=cpu
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && gpu=cuda
stamp_value="$(cksum < pyproject.toml) extras=$extras gpu=$gpu uv=${uv:+yes}"
stamp=.venv/.tts-studio-stamp

if [ "$reinstall" = 1 ]; then rm -rf .venv; fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$stamp_value" ]; then
    say "Setting up TTS Studio (first run, or something changed): a minute or two. Log: $install_log"
    started=$(date +%s)
    {
        if [ -n "$uv" ]; then
            [ -x .venv/bin/python ] || "$uv" venv --python "$python" .venv
            if [ -n "$extras" ] && [ "$gpu" = cuda ]; then
                "$uv" pip install --python .venv/bin/python --torch-backend auto "torch==2.6.0" "torchaudio==2.6.0"
            fi
            "$uv" pip install --python .venv/bin/python -e ".$extras"
        else
            [ -x .venv/bin/python ] || "$python" -m venv .venv
            .venv/bin/python -m pip install --upgrade pip
            .venv/bin/python -m pip install -e ".$extras"
        fi
    } >>"$install_log" 2>&1 || fail "Installation failed; the last lines of $install_log say why:
$(tail -n 15 "$install_log")"
    echo "$stamp_value" > "$stamp"
    say "Installed in $(( $(date +%s) - started )) s."
fi

exec .venv/bin/python -m tts_studio serve ${open_browser:+"$open_browser"} ${serve_args[@]+"${serve_args[@]}"}
