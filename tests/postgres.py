"""A throwaway PostgreSQL server for the deployment tests: its own data folder, a free port, loopback only.

``PostgresServer.prepare()`` installs Debian's ``postgresql`` package when no server binaries are found
(``apt-get``, as root), runs ``initdb`` into a fresh temporary folder and returns the command that runs
the server in the foreground, so the caller can start it in its own process group and stop it like any
other process (``AirflowDeployment`` does: its watchdog then covers PostgreSQL too). ``initdb`` and
``postgres`` refuse to run as root, so as root they run as the ``postgres`` user (``runuser``), with the
data folder owned by that user. ``start()``/``stop()`` do the same for use outside the harness::

    with PostgresServer() as server:
        print(server.sqlalchemy_url)  # postgresql+psycopg2://airflow@127.0.0.1:PORT/airflow

Durability is traded for speed (``fsync=off``): the data is thrown away at the end anyway.
``python -m tests.postgres install`` only makes sure the binaries are there (scripts/test calls it).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.debian import apt_install
from tests.loopback_only import free_port

USER = "airflow"
DATABASE = "airflow"
_BINARIES = Path("/usr/lib/postgresql")
_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "400",  # every Airflow process keeps a pool; LocalExecutor adds a worker pool
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


class PostgresError(RuntimeError):
    """PostgreSQL could not be installed, initialised or reached."""


def find_binaries() -> Path | None:
    """The folder of ``initdb`` and ``postgres``: the newest Debian one, else the ones on PATH."""
    candidates = sorted(
        (path for path in _BINARIES.glob("*/bin") if path.parent.name.isdigit()),
        key=lambda path: int(path.parent.name),
        reverse=True,
    )
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    initdb = shutil.which("initdb")
    if initdb and (Path(initdb).parent / "postgres").is_file():
        return Path(initdb).parent
    return None


def ensure_installed() -> Path:
    """The server binaries' folder, installing Debian's ``postgresql`` package first when they are missing."""
    found = find_binaries()
    if found is not None:
        return found
    apt_install(["postgresql"], PostgresError, "PostgreSQL's server binaries (initdb, postgres) are")
    found = find_binaries()
    if found is None:
        raise PostgresError("apt-get installed 'postgresql' but no initdb/postgres binaries were found.")
    return found


class PostgresServer:
    """One PostgreSQL server in a temporary data folder.

    :param port: The TCP port (default: a free one).
    """

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.data_dir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def sqlalchemy_url(self) -> str:
        """The URL Airflow's ``[database] sql_alchemy_conn`` takes."""
        return f"postgresql+psycopg2://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def dsn(self, database: str = DATABASE) -> str:
        return f"host=127.0.0.1 port={self.port} user={USER} dbname={database} connect_timeout=5"

    def _as_owner(self, argv: list[str]) -> list[str]:
        """``argv`` run as the data folder's owner: the ``postgres`` user when we are root."""
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def prepare(self) -> list[str]:
        """Install if needed, ``initdb`` a fresh data folder; return the command that runs the server."""
        binaries = ensure_installed()
        self.port = self.port or free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="camb-postgres-"))
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresError("Running as root needs the 'postgres' user (Debian's package adds it).") from None
            os.chown(self.data_dir, owner.pw_uid, owner.pw_gid)
        initdb = [str(binaries / "initdb"), "-D", str(self.data_dir), "-A", "trust", "-U", USER]
        result = subprocess.run(
            self._as_owner([*initdb, "-E", "UTF8", "--locale=C", "--no-sync"]),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise PostgresError(f"initdb failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
        server = [str(binaries / "postgres"), "-D", str(self.data_dir), "-p", str(self.port), "-k", str(self.data_dir)]
        for name, value in _SETTINGS.items():
            server += ["-c", f"{name}={value}"]
        return self._as_owner(server)

    def wait_until_ready(self, timeout: float = 60.0) -> None:
        """Wait until the server accepts connections, then create the ``airflow`` database."""
        import psycopg2

        deadline = time.monotonic() + timeout
        while True:
            try:
                connection = psycopg2.connect(self.dsn("postgres"))
                break
            except psycopg2.OperationalError as error:
                if self.process is not None and self.process.poll() is not None:
                    raise PostgresError(f"postgres exited with {self.process.returncode}") from error
                if time.monotonic() > deadline:
                    raise PostgresError(f"PostgreSQL did not accept connections on port {self.port}: {error}") from None
                time.sleep(0.2)
        with contextlib.closing(connection):
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
                if cursor.fetchone() is None:
                    cursor.execute(f"CREATE DATABASE {DATABASE}")

    def remove_data(self) -> None:
        """Delete the data folder (after the server has stopped)."""
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    # --- standalone use -------------------------------------------------------------------------

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> PostgresServer:
        argv = self.prepare()
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            self.wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # PostgreSQL's fast shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.remove_data()


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python -m tests.postgres install")
    print(f"PostgreSQL binaries: {ensure_installed()}")
