"""A transparent TCP relay in front of a real server, recording when the studio closes its side: a proxy
that cancels an upstream request mid-body must close that connection (it cannot be reused)."""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class Link:
    bytes_from_upstream: int = 0
    studio_closed: threading.Event = field(default_factory=threading.Event)
    upstream_closed: threading.Event = field(default_factory=threading.Event)
    first_closer: str | None = None  # "studio" or "upstream"
    lock: threading.Lock = field(default_factory=threading.Lock)


class TcpTap:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.links: list[Link] = []
        self.new_link = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/v1") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while not self._stopped:
            try:
                studio, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            link = Link()
            self.links.append(link)
            self.new_link.set()
            threading.Thread(target=self._pipe, args=(studio, upstream, link, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, studio, link, False), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket, link: Link, from_studio: bool) -> None:
        source_side, sink_side = ("studio", "upstream") if from_studio else ("upstream", "studio")
        closer = source_side  # recv() returned nothing or failed: the source closed
        try:
            while data := source.recv(65536):
                if not from_studio:
                    link.bytes_from_upstream += len(data)
                try:
                    sink.sendall(data)
                except OSError:
                    closer = sink_side  # the other side is gone
                    break
        except OSError:
            pass
        finally:
            with link.lock:
                link.first_closer = link.first_closer or closer
            (link.studio_closed if closer == "studio" else link.upstream_closed).set()
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stopped = True
        self._server.close()
