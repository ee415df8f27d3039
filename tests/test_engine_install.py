"""Engines installed from the studio, against local wheels (no registry): into a throwaway checkout's own
`.venv` with uv and with pip, the log and steps reported as they come, one install at a time, cancel, the
refusal (with the command to run) outside the studio's own environment, and the Models tab's Install buttons."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest

from tests.conftest import make_settings
from tts_studio.errors import Conflict
from tts_studio.services.engine_installer import (
    PROJECT_ROOT,
    EngineInstaller,
    InstallRefused,
    InstallStatus,
    extra_of,
    find_uv,
)

HINT = "pip install 'tts-studio[chatterbox]'"


def _wheel(folder: Path, name: str) -> None:
    """A minimal pure-Python wheel: `import <name>` works once it is installed."""
    dist = f"{name}-0.1.dist-info"
    files = {
        f"{name}/__init__.py": b"VERSION = '0.1'\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: 0.1\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    with zipfile.ZipFile(folder / f"{name}-0.1-py3-none-any.whl", "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
        wheel.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway studio checkout with its own `.venv` (without pip, as the launcher makes it with uv) and a
    folder of local wheels."""
    root = tmp_path_factory.mktemp("studio")
    (root / "pyproject.toml").write_text('[project]\nname = "tts-studio"\n', encoding="utf-8")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / ".venv")], check=True, timeout=120)
    (root / "wheels").mkdir()
    for name in ("tiny_engine_uv", "tiny_engine_pip"):
        _wheel(root / "wheels", name)
    return root


def _python(root: Path) -> Path:
    return root / ".venv" / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def _installer(root: Path, requirement: str, uv: str | None) -> EngineInstaller:
    return EngineInstaller(
        root,
        python=str(_python(root)),
        prefix=str(root / ".venv"),
        uv=uv,
        cuda=False,
        requirement=requirement,
        pip_args=["--no-index", "--find-links", str(root / "wheels")],
    )


def _follow(installer: EngineInstaller) -> Iterator[InstallStatus]:
    """Every status change until the install ends (as the Models tab follows it)."""
    status = installer.status()
    while status.running:
        status = installer.wait(status.lines, timeout=60)
        yield status


def _imports(root: Path, module: str) -> bool:
    return subprocess.run([str(_python(root)), "-c", f"import {module}"], check=False, timeout=60).returncode == 0


def _uv() -> str | None:
    return find_uv(PROJECT_ROOT) or next((str(p) for p in (Path(sys.executable).parent / "uv",) if p.exists()), None)


@pytest.mark.parametrize("tool", ["uv", "pip"])
def test_installs_into_the_studios_own_environment(checkout: Path, tool: str) -> None:
    uv = _uv() if tool == "uv" else None
    if tool == "uv" and uv is None:
        pytest.skip("no uv here (tests/run.sh and start.sh install one)")
    module = f"tiny_engine_{tool}"
    installer = _installer(checkout, module.replace("_", "-"), uv)
    assert installer.own_environment()
    assert not _imports(checkout, module)
    started = installer.start("chatterbox", HINT)
    assert started.running and started.extra == "chatterbox"
    assert ("uv" in started.commands[-1]) is (tool == "uv")
    if tool == "pip":  # the venv has no pip (uv made it): the bundled one comes first
        assert started.commands[0].endswith("-m ensurepip --upgrade") and len(started.commands) == 2
    seen = list(_follow(installer))
    assert seen[-1].state == "succeeded", seen[-1].log
    assert seen[-1].step == len(started.commands) and seen[-1].lines >= 4  # start, command, its output, end
    assert len(seen) >= 2  # reported while it ran, not only at the end
    assert _imports(checkout, module)


def test_one_install_at_a_time_and_cancel(checkout: Path, tmp_path: Path) -> None:
    """A 'python' that says one line and then hangs: the second start is a 409; cancel ends the whole group."""
    hanging = tmp_path / "python"
    hanging.write_text(f"#!{sys.executable}\nimport time\nprint('working', flush=True)\ntime.sleep(120)\n")
    hanging.chmod(0o755)
    if sys.platform == "win32":
        pytest.skip("a script as the interpreter needs a POSIX shebang")
    installer = EngineInstaller(checkout, python=str(hanging), prefix=str(checkout / ".venv"), uv=None, cuda=False)
    status = installer.start("chatterbox", HINT)
    while status.running and status.lines < 3:  # "Installing…", "$ command", "working"
        status = installer.wait(status.lines, timeout=60)
    assert status.running
    with pytest.raises(Conflict):
        installer.start("voxcpm2", "pip install 'tts-studio[voxcpm]'")
    installer.close()  # what shutdown does: cancel, then wait for it
    assert installer.status().state == "cancelled"
    with pytest.raises(Conflict):  # closed: no new installs
        installer.start("chatterbox", HINT)


def test_refused_outside_its_own_environment_with_the_command(checkout: Path) -> None:
    system = EngineInstaller(checkout, prefix=sys.base_prefix, base_prefix=sys.base_prefix)  # a Docker image's
    other_venv = EngineInstaller(checkout, prefix=sys.prefix)  # a venv that is not the checkout's .venv
    for installer in (system, other_venv):
        assert not installer.own_environment()
        with pytest.raises(InstallRefused) as info:
            installer.start("voxcpm2", "pip install 'tts-studio[voxcpm]'")
        assert info.value.status == 409
        assert installer.manual_command("voxcpm") in info.value.message
        assert "[voxcpm]" in installer.manual_command("voxcpm")
        assert installer.status().state == "idle"  # nothing ran


def test_commands_follow_the_launcher() -> None:
    """uv with CUDA: torch and torchaudio from pyproject's pins through --torch-backend auto first, then the
    editable checkout with the extra (start.sh's two steps); without CUDA or uv, one step."""
    assert extra_of(HINT) == "chatterbox" and extra_of("pip install hibari-tts") is None
    python = "/studio/.venv/bin/python"
    cuda = EngineInstaller(PROJECT_ROOT, python=python, uv="uv", cuda=True).commands("voxcpm")
    assert cuda[0][:6] == ["uv", "pip", "install", "--python", python, "--torch-backend"]
    assert [r.split("==")[0] for r in cuda[0][7:]] == ["torch", "torchaudio"]
    assert cuda[1] == ["uv", "pip", "install", "--python", python, "-e", f"{PROJECT_ROOT}[voxcpm]"]
    assert EngineInstaller(PROJECT_ROOT, python=python, uv="uv", cuda=False).commands("voxcpm") == [cuda[1]]
    pip = EngineInstaller(PROJECT_ROOT, python=python, uv=None).commands("voxcpm")
    assert pip == [[python, "-m", "pip", "install", "--disable-pip-version-check", "-e", f"{PROJECT_ROOT}[voxcpm]"]]


def test_models_tab_has_install_buttons(tmp_path: Path) -> None:
    """Every extra whose engines are not installed here (chatterbox, voxcpm in the core venv) has a button."""
    import gradio as gr

    from tts_studio.engines.registry import default_registry
    from tts_studio.studio import build_services
    from tts_studio.ui import models_tab
    from tts_studio.ui.context import Studio

    registry = default_registry()
    services = build_services(make_settings(tmp_path), registry)
    with gr.Blocks() as demo:
        models_tab.build(Studio(**{f.name: getattr(services, f.name) for f in fields(services)}))
    buttons = {
        c["props"].get("elem_id"): c["props"].get("value")
        for c in demo.config["components"]
        if c.get("type") == "button" and str(c["props"].get("elem_id", "")).startswith("models-install-")
    }
    missing = {extra_of(spec.install_hint) for spec in registry.values() if not spec.installed} - {None}
    assert missing >= {"chatterbox", "voxcpm"}
    for extra in missing:
        assert f"models-install-{extra}" in buttons
        assert str(buttons[f"models-install-{extra}"]).startswith("Install")
