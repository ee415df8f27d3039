"""Command line: `tts-studio serve [--host --port --device ...]` (also `python -m tts_studio serve`)."""

from __future__ import annotations

import argparse
import errno
import logging
import socket
import sys
from collections.abc import Sequence
from logging.handlers import RotatingFileHandler
from typing import Any

from pydantic import ValidationError

from tts_studio import __version__
from tts_studio.config import Settings, explain_invalid, exposed_without_key, is_loopback_host

log = logging.getLogger("tts_studio")


def find_free_port(host: str, start: int, attempts: int = 50) -> int:
    """`start` if it can be bound, else the next free port above it."""
    if start == 0:
        return 0
    for port in range(start, min(start + attempts, 65536)):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            try:
                probe.bind((host, port))
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    continue
                raise
            return port
    raise SystemExit(f"No free port between {start} and {start + attempts - 1} on {host}.")


def setup_logging(settings: Settings) -> None:
    """Console plus a rotating file in the user log dir; configured once, here."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    try:
        settings.log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(RotatingFileHandler(settings.log_dir / "tts-studio.log", maxBytes=2_000_000, backupCount=3))
    except OSError as exc:  # a read-only home must not stop the server
        print(f"warning: cannot write logs to {settings.log_dir}: {exc}", file=sys.stderr)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tts-studio", description="Local text-to-speech studio.")
    parser.add_argument("--version", action="version", version=f"tts-studio {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the server (API on /v1, health on /health)")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8600; the next free one if busy)")
    serve.add_argument("--device", help="device for GPU engines: auto, cuda, cuda:N, mps, cpu")
    serve.add_argument(
        "--api-key",
        help="require this bearer token (visible to other local users in the process list: prefer "
        "TTS_STUDIO_API_KEY, a .env file or --api-key-file)",
    )
    serve.add_argument("--api-key-file", help="read the API key from this file")
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING, ...")
    serve.add_argument("--idle-unload-seconds", type=float, help="unload engines idle this long")
    serve.add_argument(
        "--wyoming",
        metavar="[HOST:]PORT",
        help="also serve the Wyoming protocol for Home Assistant (usually 10200; no authentication)",
    )
    serve.add_argument(
        "--no-zeroconf",
        action="store_true",
        help="do not announce the Wyoming server over zeroconf (Home Assistant's discovery)",
    )
    serve.add_argument("--open-browser", action="store_true", help="open the studio in the browser once it answers")
    serve.add_argument("--no-ui", action="store_true", help="serve the API only (no Gradio)")
    serve.add_argument(
        "--ray",
        nargs="?",
        const="auto",
        metavar="ADDRESS",
        help="deploy onto a running Ray cluster (default: the one this machine belongs to); needs tts-studio[ray]",
    )
    serve.add_argument("--engines", help="with --ray: the engines to deploy, comma-separated (default: hibari)")
    sub.add_parser("engines", help="list the engines, whether they are installed, and their install commands")
    sub.add_parser("mcp", help="serve the MCP tools (speak, transcribe, list_voices, list_models) over stdio")
    download = sub.add_parser("download", help="download an engine's weights for offline use")
    download.add_argument(
        "engine", help="engine id, e.g. chatterbox or voxcpm2; `whisper`: speech to text in every language"
    )
    return parser


def list_engines() -> int:
    from tts_studio.engines.registry import default_registry

    for engine_id, spec in default_registry().items():
        state = "installed" if spec.installed else f"not installed: {spec.install_hint}"
        print(f"{engine_id:26} {spec.info.name:26} {state}")
    return 0


def download(settings: Settings, engine_id: str) -> int:
    """Fetch the weights into the user cache (progress bars from huggingface_hub)."""
    from tts_studio.engines.registry import default_registry
    from tts_studio.engines.weights import resolve_weights
    from tts_studio.errors import StudioError

    if engine_id == "whisper":  # the multilingual speech-to-text model (tiny.en ships in a package)
        from tts_studio.services.whisper_models import MultilingualWhisper

        whisper = MultilingualWhisper(settings)
        try:
            folder = whisper.download()
        except StudioError as exc:
            print(exc.message, file=sys.stderr)
            return 1
        print(f"whisper: {whisper.repo} is ready in {folder}; languages besides English now transcribe with it")
        return 0
    if engine_id == "hibari":  # the embedded engine's optional voices
        from tts_studio.engines.hibari_engine import download_voices, voice_dir

        try:
            fetched = download_voices(settings)
        except StudioError as exc:
            print(exc.message, file=sys.stderr)
            return 1
        print(f"hibari: {', '.join(fetched) or 'every voice was already here'}; voices in {voice_dir(settings)}")
        return 0
    spec = default_registry().get(engine_id)
    if spec is None or spec.info.weights_repo is None:
        print(f"'{engine_id}' has nothing to download; `tts-studio engines` lists the engines.", file=sys.stderr)
        return 2
    try:
        path = resolve_weights(settings, spec.info, download=True)
    except StudioError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    print(f"{engine_id}: weights ready in {path}")
    return 0


def wyoming_address(value: str) -> dict[str, Any]:
    """`PORT`, `HOST:PORT` or `[V6]:PORT` as settings."""
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise SystemExit(f"--wyoming takes [HOST:]PORT, e.g. 10200 or 0.0.0.0:10200; got {value!r}.")
    return {"wyoming_port": int(port), "wyoming_host": host.strip("[]") or None}


def serve_mcp_stdio(settings: Settings) -> int:
    """MCP over stdin/stdout for agent clients that start the server themselves (logs go to stderr)."""
    from tts_studio.engines.registry import default_registry
    from tts_studio.mcp_server import build_mcp
    from tts_studio.offline import disable_telemetry
    from tts_studio.studio import build_services

    disable_telemetry(settings.cache_dir)
    services = build_services(settings, default_registry())
    try:
        build_mcp(services).run("stdio")
    finally:
        services.manager.unload_all()
    return 0


def local_host(host: str) -> str:
    """Where this machine reaches a server bound to `host` (wildcard binds answer on loopback)."""
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def running_studio(host: str, port: int) -> str | None:
    """The URL of a TTS Studio already answering on host:port, else None."""
    import httpx

    url = f"http://{local_host(host)}:{port}"
    try:
        health = httpx.get(f"{url}/health", timeout=1.0).json()
    except (httpx.HTTPError, ValueError):
        return None
    return url if isinstance(health, dict) and "engines" in health and "version" in health else None


def open_when_ready(url: str, timeout: float = 120.0) -> None:
    """Open the studio in the default browser as soon as /health answers (in a background thread)."""
    import threading
    import time
    import webbrowser

    import httpx

    def wait_and_open() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    webbrowser.open(f"{url}/ui/")
                    return
            except httpx.HTTPError:
                time.sleep(0.2)

    threading.Thread(target=wait_and_open, daemon=True).start()


def serve(settings: Settings, open_browser: bool = False) -> int:
    import uvicorn

    from tts_studio.app import create_app

    existing = running_studio(settings.host, settings.port)
    if existing is not None:
        log.info("TTS Studio is already running at %s/ui/", existing)
        if open_browser:
            import webbrowser

            webbrowser.open(f"{existing}/ui/")
        return 0
    port = find_free_port(settings.host, settings.port)
    if port != settings.port:
        log.warning("Port %d is busy; using %d instead.", settings.port, port)
    settings = settings.with_overrides(port=port)
    if exposed_without_key(settings):
        log.warning(
            "Listening on %s without an API key: anyone who can reach this machine can use the studio and "
            "your voices. Set TTS_STUDIO_API_KEY (or api_key_file).",
            settings.host,
        )
    if settings.wyoming_port is not None and not is_loopback_host(settings.wyoming_host or settings.host):
        log.warning(
            "The Wyoming server listens on %s: Wyoming has no authentication, so anyone who can reach it can "
            "make the studio speak and transcribe (the API key does not apply to it).",
            settings.wyoming_host or settings.host,
        )
    if "*" in settings.allowed_origins and settings.api_key is None:
        log.warning("allowed_origins is '*' without an API key: every web page you visit can use the studio.")
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=port, log_config=None, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host
    log.info(
        "TTS Studio %s on http://%s:%d  (OpenAI base_url: http://%s:%d/v1)",
        __version__,
        shown_host,
        port,
        shown_host,
        port,
    )
    if settings.enable_ui:
        local = local_host(settings.host)
        log.info("Open the studio at http://%s:%d/ui/", local, port)
        if open_browser:
            open_when_ready(f"http://{local}:{port}")
    server.run()
    return 0


_FLAGS = ("host", "port", "device", "api_key", "api_key_file", "log_level", "idle_unload_seconds")


def load_settings(args: argparse.Namespace) -> Settings:
    """Defaults, then `.env`, then the environment, then the command line's flags (a flag's value replaces
    the environment's before either is validated)."""
    overrides: dict[str, Any] = {k: v for k in _FLAGS if (v := getattr(args, k, None)) is not None}
    if getattr(args, "no_ui", False):
        overrides["enable_ui"] = False
    if getattr(args, "wyoming", None):
        overrides.update(wyoming_address(args.wyoming))
    if getattr(args, "no_zeroconf", False):
        overrides["wyoming_zeroconf"] = False
    if getattr(args, "engines", None):
        overrides["ray_engines"] = [name.strip() for name in args.engines.split(",") if name.strip()]
    return Settings(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args)
    except ValidationError as exc:  # one line naming the variable or flag, no traceback
        given = {k: f"--{k.replace('_', '-')}" for k in _FLAGS if getattr(args, k, None) is not None}
        print(f"tts-studio: {explain_invalid(exc, given)}", file=sys.stderr)
        return 2
    setup_logging(settings)
    if getattr(args, "api_key", None):
        log.warning(
            "--api-key is visible to every user of this machine in the process list; prefer "
            "TTS_STUDIO_API_KEY, a .env file or --api-key-file."
        )
    if args.command == "serve" and args.ray:
        from tts_studio.cluster.launch import serve_on_ray

        return serve_on_ray(settings, args.ray)
    if args.command == "serve":
        return serve(settings, open_browser=args.open_browser)
    if args.command == "engines":
        return list_engines()
    if args.command == "mcp":
        return serve_mcp_stdio(settings)
    if args.command == "download":
        return download(settings, args.engine)
    return 2
