"""Loopback only: this test process may listen on and connect to 127.0.0.0/8 and ``::1``, nothing else.

Installed by ``conftest.py`` for the whole session. A bind or connect to any other address (a private,
link-local or public one, or ``0.0.0.0``) is refused before the socket call, recorded in
``REFUSED`` and raised as ``NotLoopbackError``. Unix sockets are allowed. Subprocesses (Airflow
components, moto, PostgreSQL) are configured for loopback by the harnesses that start them.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

REFUSED: list[tuple[str, str]] = []  # (operation, address) of every refused call


class NotLoopbackError(PermissionError):
    """A test tried to reach or listen on an address outside loopback."""


def is_loopback_address(address: Any) -> bool:
    """True for a loopback (host, port, ...) socket address; Unix socket paths count as local."""
    if not isinstance(address, tuple):
        return True  # AF_UNIX path (str or bytes)
    host = address[0]
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        parsed = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # a name that was not resolved to an address first
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return parsed.is_loopback


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (the OS picks it; bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _guarded(operation: str, original: Any) -> Any:
    def call(self: socket.socket, address: Any, *args: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback_address(address):
            REFUSED.append((operation, str(address[0])))
            raise NotLoopbackError(f"tests may only {operation} on loopback, not {address[0]!r}")
        return original(self, address, *args)

    call.__name__ = original.__name__
    return call


def install() -> None:
    """Guard ``bind``, ``connect`` and ``connect_ex`` of every socket this process makes (idempotent)."""
    if getattr(socket.socket, "_camb_loopback_only", False):
        return
    for operation, name in (("listen", "bind"), ("connect", "connect"), ("connect", "connect_ex")):
        setattr(socket.socket, name, _guarded(operation, getattr(socket.socket, name)))
    socket.socket._camb_loopback_only = True  # type: ignore[attr-defined]
