"""Engines installed from the studio: an engine's extra (`tts-studio[chatterbox]`, `[voxcpm]`, `[pocket]`) goes
into the studio's own environment, the way the launcher installs it (start.sh: uv when there is one, else the
venv's pip; CUDA torch through `uv --torch-backend auto` when `nvidia-smi` works).

Only a studio running from its own checkout's `.venv` (what start.sh / start.bat / start.command make) installs
anything; under any other Python (a system Python, a Docker image, a venv of the user's) it refuses and shows
the command to run instead. One install runs at a time, as a subprocess whose output is kept line by line for
the Models tab; shutdown cancels it. The running studio cannot import a freshly installed engine cleanly (torch
and friends), so a finished install says to restart the studio: the launcher has no restart loop.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import tomllib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tts_studio.errors import Conflict, InvalidRequest

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout (or the Docker image's /app)
LOG_LINES = 400  # the newest install log lines kept for the page
_EXTRA = re.compile(r"tts-studio\[([A-Za-z0-9_,-]+)\]")
RESTART = "Restart the studio (close it and start it again) so the engine appears."


def extra_of(install_hint: str) -> str | None:
    """The tts-studio extra an engine's install hint names ("pip install 'tts-studio[voxcpm]'" -> "voxcpm")."""
    match = _EXTRA.search(install_hint)
    return match.group(1) if match else None


def find_uv(root: Path) -> str | None:
    """uv as the launcher finds it: on PATH, else its private copy in .tools (None: TTS_STUDIO_NO_UV=1 or none)."""
    if os.environ.get("TTS_STUDIO_NO_UV") == "1":
        return None
    found = shutil.which("uv")
    if found:
        return found
    for private in (root / ".tools/uvenv/bin/uv", root / ".tools/uvenv/Scripts/uv.exe"):
        if private.is_file():
            return str(private)
    return None


def cuda_present() -> bool:
    """What start.sh checks: `nvidia-smi -L` runs and succeeds."""
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def torch_pins(root: Path, extra: str) -> list[str]:
    """The extra's torch / torchaudio requirements in pyproject.toml (what the CUDA step installs first)."""
    try:
        project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        requirements: list[str] = project["optional-dependencies"][extra]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return []
    return [r for r in requirements if re.match(r"torch(audio)?\s*[=<>~!]", r)]


def shown(command: Sequence[str]) -> str:
    """A command as the user would type it in a shell."""
    return shlex.join(command) if os.name != "nt" else subprocess.list2cmdline(command)


@dataclass
class InstallStatus:
    """One install (or none yet); a snapshot the page and the API read."""

    engine_id: str | None = None
    extra: str | None = None
    state: str = "idle"  # idle | running | succeeded | failed | cancelled
    commands: list[str] = field(default_factory=list)
    step: int = 0  # the command running (1-based), of len(commands)
    lines: int = 0  # log lines seen so far (also those no longer kept)
    log: list[str] = field(default_factory=list)  # the newest LOG_LINES lines
    message: str = ""

    @property
    def running(self) -> bool:
        return self.state == "running"


class InstallRefused(InvalidRequest):
    """This studio does not run from its own environment: the message carries the command to run instead."""

    status = 409
    code = "install_refused"


class EngineInstaller:
    """Installs engine extras into the studio's own environment; shared by the UI (and any caller).

    Everything is a parameter so tests can point it at a throwaway venv and a local wheel folder:
    `requirement` replaces `-e <root>[extra]`, `pip_args` are added to every install command
    (e.g. `--no-index --find-links DIR`)."""

    def __init__(
        self,
        root: Path = PROJECT_ROOT,
        *,
        python: str | None = None,
        prefix: str | None = None,
        base_prefix: str | None = None,
        uv: str | bool | None = True,  # True: find it like the launcher; None/False: plain pip
        cuda: bool | None = None,  # None: ask nvidia-smi when an install starts
        requirement: str | None = None,
        pip_args: Sequence[str] = (),
    ) -> None:
        self.root = root
        self.python = python or sys.executable
        self.prefix = prefix or sys.prefix
        self.base_prefix = base_prefix or sys.base_prefix
        self._uv = uv
        self._cuda = cuda
        self._requirement = requirement
        self._pip_args = list(pip_args)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._status = InstallStatus()
        self._log: deque[str] = deque(maxlen=LOG_LINES)
        self._process: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self._cancelled = False
        self._closed = False

    # -- what would run ------------------------------------------------------------------------
    def own_environment(self) -> bool:
        """Running from a venv that is the checkout's own `.venv` (as the launchers make it)."""
        if Path(self.prefix).resolve() == Path(self.base_prefix).resolve():
            return False  # a system or base Python (a Docker image's): not ours to change
        own = self.root / ".venv"
        return (self.root / "pyproject.toml").is_file() and Path(self.prefix).resolve() == own.resolve()

    def _target(self, extra: str) -> list[str]:
        if self._requirement is not None:
            return [self._requirement]
        return ["-e", f"{self.root}[{extra}]"]

    def uv(self) -> str | None:
        if self._uv is True:
            return find_uv(self.root)
        return self._uv or None

    def commands(self, extra: str, cuda: bool | None = None) -> list[list[str]]:
        """The install commands for `extra`, in order (as start.sh runs them)."""
        uv = self.uv()
        if uv is None:
            pip = [self.python, "-m", "pip", "install", "--disable-pip-version-check"]
            install = [*pip, *self._target(extra), *self._pip_args]
            # a .venv made by uv has no pip: bring the bundled one first (as tests/run.sh does)
            return [install] if self._has_pip() else [[self.python, "-m", "ensurepip", "--upgrade"], install]
        base = [uv, "pip", "install", "--python", self.python]
        steps = []
        pins = torch_pins(self.root, extra) if self._requirement is None else []
        if pins and (cuda if cuda is not None else self._cuda if self._cuda is not None else cuda_present()):
            steps.append([*base, "--torch-backend", "auto", *pins, *self._pip_args])
        steps.append([*base, *self._target(extra), *self._pip_args])
        return steps

    def _has_pip(self) -> bool:
        prefix = Path(self.prefix)
        return any(prefix.glob("lib/python*/site-packages/pip")) or (prefix / "Lib/site-packages/pip").is_dir()

    def manual_command(self, extra: str) -> str:
        """What to run by hand when the studio cannot install itself."""
        if not (self.root / "pyproject.toml").is_file():
            return shown([self.python, "-m", "pip", "install", f"tts-studio[{extra}]"])
        command = shown([self.python, "-m", "pip", "install", "-e", f"{self.root}[{extra}]"])
        launcher = "start.bat" if os.name == "nt" else "start.sh"
        if (self.root / launcher).is_file():  # a checkout (the Docker image has no launcher)
            return f"{command} (or start the studio with {shown([str(self.root / launcher), '--engines', extra])})"
        return command

    # -- running ---------------------------------------------------------------------------------
    def status(self) -> InstallStatus:
        with self._lock:
            return self._snapshot()

    def _snapshot(self) -> InstallStatus:
        s = self._status
        return InstallStatus(
            s.engine_id, s.extra, s.state, list(s.commands), s.step, s.lines, list(self._log), s.message
        )

    def wait(self, seen_lines: int, timeout: float) -> InstallStatus:
        """The status once there is a line past `seen_lines`, the install ends, or `timeout` passes."""
        with self._changed:
            self._changed.wait_for(lambda: self._status.lines > seen_lines or not self._status.running, timeout)
            return self._snapshot()

    def start(self, engine_id: str, install_hint: str) -> InstallStatus:
        """Start installing `engine_id`'s extra (409 while another install runs, or when refused)."""
        extra = extra_of(install_hint)
        if extra is None:
            raise InvalidRequest(
                f"'{engine_id}' is not installed as a tts-studio extra: {install_hint}", param="engine"
            )
        if not self.own_environment():
            raise InstallRefused(
                f"This studio is not running from its own environment ({self.prefix}), so it does not change it. "
                f"Install {engine_id} yourself, then restart the studio: {self.manual_command(extra)}",
                param="engine",
            )
        steps = self.commands(extra)  # may ask nvidia-smi: outside the lock
        with self._lock:
            if self._closed:
                raise Conflict("The studio is shutting down.", code="shutting_down")
            if self._status.running:
                raise Conflict(
                    f"tts-studio[{self._status.extra}] is being installed; wait for it or cancel it.", code="busy"
                )
            self._cancelled = False
            self._log.clear()
            self._status = InstallStatus(engine_id, extra, "running", [shown(c) for c in steps], 0, 0, [], "")
            self._message(f"Installing tts-studio[{extra}] into {self.prefix}…")
            self._thread = threading.Thread(target=self._run, args=(steps,), name="engine-install", daemon=True)
            self._thread.start()
            return self._snapshot()

    def _message(self, text: str) -> None:
        """Set the status line (under the lock); it also goes to the log."""
        self._status.message = text
        self._log.append(text)
        self._status.lines += 1
        self._changed.notify_all()

    def _run(self, steps: list[list[str]]) -> None:
        state, text = "succeeded", ""
        try:
            for number, command in enumerate(steps, start=1):
                with self._lock:
                    if self._cancelled:
                        break
                    self._status.step = number
                    self._message(f"$ {shown(command)}")
                    self._process = self._spawn(command)
                process = self._process
                assert process.stdout is not None
                with process.stdout:
                    for line in process.stdout:
                        with self._lock:
                            self._log.append(line.rstrip())
                            self._status.lines += 1
                            self._changed.notify_all()
                code = process.wait()
                if code != 0:
                    state, text = "failed", f"The install failed (exit code {code}); the log above says why."
                    break
        except OSError as exc:
            state, text = "failed", f"The installer could not run: {exc.strerror or exc}."
        with self._lock:
            self._process = None
            extra = self._status.extra
            if self._cancelled:
                state, text = "cancelled", "The install was cancelled."
            elif state == "succeeded":
                importlib.invalidate_caches()
                text = f"tts-studio[{extra}] is installed. {RESTART}"
            self._status.state = state
            self._message(text)
        log.info("engine install tts-studio[%s]: %s", extra, state)

    def _spawn(self, command: list[str]) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "NO_COLOR": "1"}
        return subprocess.Popen(  # a fixed command list, no shell; its own process group (cancel stops it all)
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            cwd=self.root,
            env=env,
            start_new_session=os.name != "nt",
            creationflags=getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0),  # Windows only; 0 elsewhere
        )

    def cancel(self) -> bool:
        """Stop a running install (its whole process group); True if one was running."""
        with self._lock:
            if not self._status.running:
                return False
            self._cancelled = True
            process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(OSError):
                if os.name == "nt":
                    process.terminate()
                else:
                    os.killpg(process.pid, signal.SIGTERM)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Shutdown: no new installs; a running one is cancelled and waited for (bounded)."""
        with self._lock:
            self._closed = True
        self.cancel()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
