"""A hostile HTTP server on one loopback address, for the cases the stand-in cannot produce.

Each test scripts the reply (``Script``): trickle it byte by byte, stream without end, redirect
elsewhere, echo the key. The server records every request it received and whether the client hung up
before the script finished, so a test can assert what reached it: nothing, for every refusal.
It listens on 127.0.0.0/8 only; ``tls=True`` serves https with a self-signed certificate for its
address (``ca_file`` is the certificate to trust).
"""

from __future__ import annotations

import ipaddress
import socket
import socketserver
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.tls_proxy import make_certificate


@dataclass(frozen=True)
class Received:
    """One request the server received."""

    method: str
    target: str
    headers: dict[str, str]


class ClientGone(Exception):
    """The client closed the connection while the script was still writing."""


@dataclass
class Reply:
    """What a script writes with: counts the bytes that left and notices when the client hangs up."""

    sock: socket.socket
    sent: int = 0

    def write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as error:
            raise ClientGone from error
        self.sent += len(data)

    def head(self, status: int = 200, headers: dict[str, str] | None = None) -> None:
        lines = [f"HTTP/1.1 {status} X"] + [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def trickle(self, data: bytes, every: float) -> None:
        """Write ``data`` one byte at a time, ``every`` seconds apart."""
        for index in range(len(data)):
            self.write(data[index : index + 1])
            time.sleep(every)


Script = Callable[[Received, Reply], None]


def json_reply(body: bytes, status: int = 200) -> Script:
    def script(request: Received, reply: Reply) -> None:
        reply.head(status, {"Content-Type": "application/json", "Content-Length": str(len(body))})
        reply.write(body)

    return script


def redirect(location: str, status: int = 302) -> Script:
    def script(request: Received, reply: Reply) -> None:
        reply.head(status, {"Location": location, "Content-Length": "0"})

    return script


@dataclass
class _State:
    script: Script
    received: list[Received] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)  # bytes written per connection, once it ended
    client_gone: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)  # a script ran to its end


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        state, sock = self.server.state, self.request
        sock.settimeout(30)
        reader = sock.makefile("rb")
        reply = Reply(sock)
        try:
            while (request := _read_request(reader)) is not None:
                state.received.append(request)
                state.script(request, reply)
                state.finished.set()
        except ClientGone:
            state.client_gone.set()
        except OSError:
            pass
        finally:
            state.sent.append(reply.sent)


def _read_request(reader: Any) -> Received | None:
    line = reader.readline(65537).decode("latin-1").strip()
    if not line:
        return None
    method, target, _ = [*line.split(" ", 2), "", ""][:3]
    headers: dict[str, str] = {}
    while (header := reader.readline(65537).decode("latin-1").strip()) != "":
        name, _, value = header.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    if length:
        reader.read(length)
    return Received(method, target, headers)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, state: _State, tls: ssl.SSLContext | None) -> None:
        self.state, self.tls = state, tls
        super().__init__((host, 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True)
        return sock, address


class HostileServer:
    """``with HostileServer(script, host="127.0.0.2") as server:`` serves ``script`` for every request."""

    def __init__(self, script: Script, *, host: str = "127.0.0.1", tls: bool = False) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"tests listen on loopback only, not {host!r}")
        self.host, self.tls = host, tls
        self._state = _State(script)
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        context = self._tls_context() if tls else None
        self._server = _Server(host, self._state, context)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"hostile-{host}", daemon=True
        )

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self._server.server_address[1]}"

    @property
    def received(self) -> list[Received]:
        return list(self._state.received)

    @property
    def client_gone(self) -> threading.Event:
        """Set when the client hung up while the script was still writing."""
        return self._state.client_gone

    @property
    def finished(self) -> threading.Event:
        """Set when a script wrote its whole reply."""
        return self._state.finished

    @property
    def bytes_sent(self) -> int:
        return sum(self._state.sent)

    @property
    def ca_file(self) -> str:
        assert self._folder is not None, "only a tls=True server has a certificate"
        return str(Path(self._folder.name) / "proxy-cert.pem")

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        if self._folder is not None:
            self._folder.cleanup()

    def _tls_context(self) -> ssl.SSLContext:
        self._folder = tempfile.TemporaryDirectory(prefix="camb-hostile-")
        cert_file, key_file = make_certificate(Path(self._folder.name), host=self.host)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        return context
