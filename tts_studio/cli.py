"""Command line: `tts-studio serve [--host --port --device ...]` (also `python -m tts_studio serve`)."""

from __future__ import annotations

import argparse
import errno
import logging
import socket
import sys
from collections.abc import Sequence
from logging.handlers import RotatingFileHandler

from tts_studio import __version__
from tts_studio.config import Settings

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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tts-studio", description="Local text-to-speech studio.")
    parser.add_argument("--version", action="version", version=f"tts-studio {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the server (API on /v1, health on /health)")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8600; the next free one if busy)")
    serve.add_argument("--device", help="device for GPU engines: auto, cuda, cuda:N, mps, cpu")
    serve.add_argument("--api-key", help="require this bearer token on /v1 routes")
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING, ...")
    serve.add_argument("--idle-unload-seconds", type=float, help="unload engines idle this long")
    sub.add_parser("engines", help="list the engines, whether they are installed, and their install commands")
    download = sub.add_parser("download", help="download an engine's weights for offline use")
    download.add_argument("engine", help="engine id, e.g. chatterbox or voxcpm2")
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


def serve(settings: Settings) -> int:
    import uvicorn

    from tts_studio.app import create_app

    port = find_free_port(settings.host, settings.port)
    if port != settings.port:
        log.warning("Port %d is busy; using %d instead.", settings.port, port)
    settings = settings.with_overrides(port=port)
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
    server.run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings().with_overrides(
        **{k: getattr(args, k, None) for k in ("host", "port", "device", "api_key", "log_level", "idle_unload_seconds")}
    )
    setup_logging(settings)
    if args.command == "serve":
        return serve(settings)
    if args.command == "engines":
        return list_engines()
    if args.command == "download":
        return download(settings, args.engine)
    return 2
