"""A throwaway Redis server for the CeleryExecutor deployment tests: a free port, loopback only, nothing on disk.

``RedisBroker.argv()`` installs Debian's ``redis-server`` package when the binary is missing (``apt-get``,
as root, like ``tests/postgres.py`` does for PostgreSQL) and returns the command that runs the server in
the foreground, so ``AirflowDeployment`` starts it in its own process group and stops it like any other
process. ``python -m tests.redis_broker install`` only makes sure the binary is there (scripts/test calls it).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time

from tests.debian import apt_install
from tests.loopback_only import free_port


class RedisError(RuntimeError):
    """Redis could not be installed or reached."""


def ensure_installed() -> str:
    """The path of ``redis-server``, installing Debian's ``redis-server`` package first when it is missing."""
    found = shutil.which("redis-server")
    if found:
        return found
    apt_install(["redis-server"], RedisError, "redis-server is")
    found = shutil.which("redis-server")
    if not found:
        raise RedisError("apt-get installed 'redis-server' but no redis-server binary was found.")
    return found


class RedisBroker:
    """One Redis server on 127.0.0.1, without persistence (a broker's queue lives only as long as the test)."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Celery's ``broker_url``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        binary = ensure_installed()
        self.port = self.port or free_port()
        return [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]

    def wait_until_ready(self, timeout: float = 30.0) -> None:
        """Wait until the server answers PING."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError as error:
                if self.process is not None and self.process.poll() is not None:
                    raise RedisError(f"redis-server exited with {self.process.returncode}") from error
            if time.monotonic() > deadline:
                raise RedisError(f"Redis did not answer on port {self.port}.")
            time.sleep(0.1)


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python -m tests.redis_broker install")
    print(f"redis-server: {ensure_installed()}")
