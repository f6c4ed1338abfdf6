"""A real Airflow 3 deployment in a temporary AIRFLOW_HOME, with the CAMB stand-in, for end-to-end tests.

``AirflowDeployment`` starts the CAMB stand-in CLI and Airflow's scheduler (LocalExecutor), triggerer(s),
dag-processor and API server as separate processes, each in its own process group with its own log
file, all on ports chosen free at start. The metadata database is a PostgreSQL server started for the
deployment (``database="postgresql"``, the default; ``tests/postgres.py``) or a SQLite file
(``database="sqlite"``). ``triggerers=2`` runs two triggerers; ``object_storage=True`` adds an S3 API
(moto, ``tests/object_storage.py``) as the ``aws`` connection ``camb_s3``. ``executor="CeleryExecutor"``
runs the tasks on ``celery_workers`` Celery workers (``celery-worker-1``, ...), each with its own temporary
folder, over a Redis broker started for the deployment (``tests/redis_broker.py``). Tests trigger DAGs with the
``airflow`` CLI, follow them through the REST API, read the metadata database directly (``query``, on
either database), restart or kill a triggerer, stop the stand-in, and search every log and the database
for a string::

    with AirflowDeployment(dags=[Path("example_dags/example_camb_text_to_voice.py")]) as airflow:
        run_id = airflow.trigger("example_camb_text_to_voice", {"destination": "/tmp/out"})
        assert airflow.wait_for_run("example_camb_text_to_voice", run_id) == "success"

``stop()`` (also run on ``with`` exit, at interpreter exit and by the pytest fixture) ends every
process group it started, SIGTERM first and SIGKILL after a grace period, children included. A
detached watchdog SIGKILLs those groups if the test process itself dies without calling ``stop()``.

Reuse: ``restart_triggerer(kill=True)`` (kill -9, then a fresh triggerer), ``standin.client.outage(30)``
(the API refuses connections for 30 s) or ``stop_standin()``/``restart_standin()``, ``trigger(...,
via="api")`` for many runs, ``task_states`` for mapped tasks (``"wait[3]"``), ``trigger_rows``,
``triggerer_job_ids``, ``triggerer_job_id(name)``, ``query(sql)`` (``?`` placeholders on both databases),
``table_names()``, ``log_files()`` and ``files_containing(secret)``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from airflow_provider_camb.testing import CambStandInClient
from tests.loopback_only import free_port
from tests.object_storage import MotoS3
from tests.postgres import PostgresServer
from tests.redis_broker import RedisBroker

AIRFLOW_3 = int(__import__("airflow").__version__.split(".")[0]) >= 3
#: The marks of every deployment test module (``pytestmark = DEPLOYMENT_TESTS``): run by ``-m deployment``.
DEPLOYMENT_TESTS = [
    pytest.mark.deployment,
    pytest.mark.skipif(not AIRFLOW_3, reason="the deployment harness runs Airflow 3 components"),
]
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
DATABASES = ("postgresql", "sqlite")
EXECUTORS = ("LocalExecutor", "CeleryExecutor")
#: The ``aws`` connection to the S3 API of ``object_storage=True``.
S3_CONN_ID = "camb_s3"


class Row(tuple):  # type: ignore[type-arg]
    """One row read by ``query``, alike on both databases: ``row["column"]``, ``row[0]``, ``dict(row)``."""

    names: tuple[str, ...] = ()

    @classmethod
    def of(cls, names: tuple[str, ...], values: Iterable[Any]) -> Row:
        row = cls(bytes(value) if isinstance(value, memoryview) else value for value in values)
        row.names = names
        return row

    def keys(self) -> list[str]:
        return list(self.names)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self.names.index(key))
        return tuple.__getitem__(self, key)


class DeploymentError(RuntimeError):
    """A component did not start, died, or a wait ran out; the message carries the logs' tails."""


@dataclass
class _Process:
    """One started process group and the file its output goes to."""

    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    log_offset: int = 0  # where this start's output begins in the (appended) log file

    @property
    def pid(self) -> int | None:
        return None if self.popen is None else self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])


@dataclass
class StandIn:
    """The running stand-in CLI: its addresses, key, and a client for its control API."""

    base_url: str
    preview_base_url: str
    api_key: str
    connection_json: str
    client: CambStandInClient = field(repr=False)


def _stop_groups(processes: Iterable[_Process], grace: float) -> None:
    """SIGTERM each process group (and any descendant that left it) at once, then SIGKILL what is left."""
    started = [process for process in processes if process.popen is not None]
    family: list[psutil.Process] = []
    for process in started:
        assert process.popen is not None
        with contextlib.suppress(psutil.NoSuchProcess):
            leader = psutil.Process(process.popen.pid)
            family += [leader, *leader.children(recursive=True)]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.popen.pid, signal.SIGTERM)
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            member.terminate()
    _, alive = psutil.wait_procs(family, timeout=grace)
    for process in started:
        assert process.popen is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.popen.pid, signal.SIGKILL)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            member.kill()
    psutil.wait_procs(alive, timeout=5)
    for process in started:
        assert process.popen is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=5)


class AirflowDeployment:
    """Scheduler, triggerer, dag-processor and API server of Airflow 3 plus the CAMB stand-in.

    :param dags: DAG files copied into the DAGs folder before start (more with ``add_dag``).
    :param home: The AIRFLOW_HOME to use; default a fresh temporary folder, removed by ``stop()``.
    :param pending_seconds: How long stand-in tasks stay PENDING.
    :param standin_args: More arguments for ``python -m airflow_provider_camb.testing``.
    :param env: More environment (e.g. ``AIRFLOW__CORE__PARALLELISM``) for every Airflow process.
    :param keep_home: Leave the home folder (logs, database) behind after ``stop()``.
    :param start_timeout: Seconds to wait for every component to report healthy.
    :param database: ``"postgresql"`` (a server started for this deployment) or ``"sqlite"``.
    :param triggerers: How many triggerers run (``triggerer``, ``triggerer-2``, ...).
    :param object_storage: Also start moto's S3 API, as the ``aws`` connection ``camb_s3``.
    :param users: Simple auth manager users and their roles (``{"admin": "ADMIN", "nobody": ""}``; an
        empty role has no permission). Default: everyone is an admin, no login. With users, ``api()``
        acts as the first ADMIN, ``token(user)`` logs any of them in, ``password(user)`` reads theirs.
    :param executor: ``"LocalExecutor"`` (in the scheduler) or ``"CeleryExecutor"`` (workers, Redis broker).
    :param celery_workers: How many Celery workers run with the CeleryExecutor, each with ``worker_concurrency`` slots.
    :param worker_concurrency: Task slots of each Celery worker.
    """

    def __init__(
        self,
        dags: Iterable[str | os.PathLike[str]] = (),
        *,
        home: str | os.PathLike[str] | None = None,
        pending_seconds: float = 10.0,
        standin_args: Iterable[str] = (),
        env: dict[str, str] | None = None,
        keep_home: bool = False,
        start_timeout: float = 120.0,
        database: str = "postgresql",
        triggerers: int = 1,
        object_storage: bool = False,
        users: dict[str, str] | None = None,
        executor: str = "LocalExecutor",
        celery_workers: int = 2,
        worker_concurrency: int = 4,
    ) -> None:
        if not AIRFLOW_3:
            raise RuntimeError("AirflowDeployment runs Airflow 3 components (api-server, dag-processor).")
        if database not in DATABASES:
            raise ValueError(f"database must be one of {DATABASES}, not {database!r}")
        if triggerers < 1:
            raise ValueError(f"triggerers must be at least 1, not {triggerers!r}")
        if executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, not {executor!r}")
        self._own_home = home is None
        self.home = Path(home) if home is not None else Path(tempfile.mkdtemp(prefix="camb-deployment-"))
        self.dags_folder = self.home / "dags"
        self.component_logs = self.home / "component-logs"
        self.db_path = self.home / "airflow.db"
        self.request_log = self.home / "standin-requests.jsonl"
        self._dags = [Path(dag) for dag in dags]
        self.pending_seconds = pending_seconds
        self._standin_args = list(standin_args)
        self._extra_env = dict(env or {})
        self.keep_home = keep_home
        self.start_timeout = start_timeout
        self.database = database
        self.postgres = PostgresServer() if database == "postgresql" else None
        self.s3 = MotoS3() if object_storage else None
        self.users = dict(users or {})
        if self.users and "ADMIN" not in {role.upper() for role in self.users.values()}:
            raise ValueError(f"users needs an ADMIN (the harness's own REST calls act as one): {self.users}")
        self.executor = executor
        self.broker = RedisBroker() if executor == "CeleryExecutor" else None
        self.worker_concurrency = worker_concurrency
        workers = [f"celery-worker-{number}" for number in range(1, celery_workers + 1)] if self.broker else []
        self.components = [*COMPONENTS, *(f"triggerer-{number}" for number in range(2, triggerers + 1)), *workers]
        self._down: set[str] = set()  # components stopped on purpose: check_alive leaves them be
        self._triggerer_jobs: dict[str, int] = {}
        self.api_port = 0
        self.api_url = ""
        self.standin: StandIn | None = None
        self._processes: dict[str, _Process] = {}
        self._token: str | None = None
        self._http = requests.Session()
        self._stopped = False
        self.env: dict[str, str] = {}

    # --- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> AirflowDeployment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> AirflowDeployment:
        """Migrate the database, start the stand-in and every component; return once all are healthy."""
        atexit.register(self.stop)
        try:
            self.dags_folder.mkdir(parents=True, exist_ok=True)
            self.component_logs.mkdir(parents=True, exist_ok=True)
            self._start_watchdog()
            for dag in self._dags:
                self.add_dag(dag)
            self._start_services()
            self.start_standin()
            self.env = self._environment()
            self.airflow("db", "migrate", timeout=300)
            for name in self.components:
                self.start_component(name)
                if name.startswith("triggerer") and len(self.triggerer_names) > 1:
                    self._note_triggerer_job(name)  # one at a time: each one's job id is known
            self.wait_until_healthy(self.start_timeout)
            if self.broker is not None:
                self.wait_for_workers(self.start_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, grace: float = 15.0) -> None:
        """End every process group this deployment started (idempotent; safe after a failed start)."""
        if self._stopped:
            return
        self._stopped = True
        self._groups_file.unlink(missing_ok=True)  # the watchdog exits when its list is gone
        services = ("standin", "s3", "redis", "postgres")  # stopped last: Airflow's processes use them until the end
        _stop_groups([p for name, p in self._processes.items() if name not in services], grace)
        _stop_groups([p for name, p in self._processes.items() if name in services], grace)
        if self.standin is not None:
            self.standin.client.close()
        if self.s3 is not None:
            self.s3.stop()  # closes its client; the process is gone already
        self._http.close()
        atexit.unregister(self.stop)
        if self.postgres is not None and not self.keep_home:
            self.postgres.remove_data()
        if self._own_home and not self.keep_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def _start_services(self) -> None:
        """PostgreSQL, moto and Redis, when asked for, each in its own process group like the components."""
        if self.postgres is not None:
            self._spawn("postgres", self.postgres.prepare(), dict(os.environ))
            self.postgres.process = self._processes["postgres"].popen
            self.postgres.wait_until_ready()
        if self.s3 is not None:
            env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "AWS_"))}
            self.s3.process = self._spawn("s3", self.s3.argv(), env).popen
            self.s3.wait_until_ready()
        if self.broker is not None:
            self.broker.process = self._spawn("redis", self.broker.argv(), dict(os.environ)).popen
            self.broker.wait_until_ready()

    @property
    def sql_alchemy_conn(self) -> str:
        """The metadata database's URL, as Airflow's ``[database] sql_alchemy_conn`` takes it."""
        return self.postgres.sqlalchemy_url if self.postgres is not None else f"sqlite:///{self.db_path}"

    @property
    def triggerer_names(self) -> list[str]:
        return [name for name in self.components if name.startswith("triggerer")]

    def _environment(self) -> dict[str, str]:
        assert self.standin is not None
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "AWS_"))}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": self.executor,
                "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
                "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP": r"(airflow|airflow_provider_camb)\..*",
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": self.api_url,
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW_CONN_CAMB_DEFAULT": self.standin.connection_json,
                "AWS_EC2_METADATA_DISABLED": "true",  # boto never asks a cloud metadata address
                "PYTHONUNBUFFERED": "1",
                "NO_COLOR": "1",
            }
        )
        if self.s3 is not None:
            env[f"AIRFLOW_CONN_{S3_CONN_ID.upper()}"] = self.s3.connection_json()
        if self.users:
            env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "False"
            env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = ",".join(f"{u}:{r}" for u, r in self.users.items())
        if self.broker is not None:
            env["AIRFLOW__CELERY__BROKER_URL"] = self.broker.url
            env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + self.sql_alchemy_conn
            env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = str(self.worker_concurrency)
        env.update(self._extra_env)
        return env

    def add_dag(self, dag: str | os.PathLike[str], source: str | None = None) -> Path:
        """Copy a DAG file (or write ``source`` under its name) into the DAGs folder."""
        target = self.dags_folder / Path(dag).name
        self.dags_folder.mkdir(parents=True, exist_ok=True)
        if source is None:
            shutil.copyfile(dag, target)
        else:
            target.write_text(source)
        return target

    # --- processes -----------------------------------------------------------------------------

    @property
    def _groups_file(self) -> Path:
        return self.home / "process-groups.txt"

    def _start_watchdog(self) -> None:
        """A detached sentry that SIGKILLs every group started here if this process dies without stop().

        Fixture finalizers and atexit cover failing tests; this covers a test process killed outright
        (SIGKILL, or a CI timeout's SIGTERM), which would otherwise leave Airflow running.
        """
        self._groups_file.write_text("")
        subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(self._groups_file)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> _Process:
        log_path = self.component_logs / f"{name}.log"
        with log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%H:%M:%S')} starting: {shlex.join(argv)}\n".encode())
            log.flush()
            offset = log.tell()
            popen = subprocess.Popen(
                argv,
                env=env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() kills it and all its children
            )
        process = _Process(name, argv, log_path, popen, time.monotonic(), offset)
        self._processes[name] = process
        if self._groups_file.exists():
            with self._groups_file.open("a") as groups:
                groups.write(f"{popen.pid}\n")
        return process

    def start_component(self, name: str) -> None:
        """Start one Airflow component (``api-server``, ``scheduler``, ``dag-processor``, ``triggerer[-N]``,
        ``celery-worker-N``)."""
        if name.startswith("celery-worker"):
            self._start_worker(name)
            return
        command = "triggerer" if name.startswith("triggerer") else name
        argv = [sys.executable, "-m", "airflow", command]
        env = self.env
        if name == "api-server":
            argv += ["--host", "127.0.0.1", "--port", str(self.api_port)]
        if command in ("scheduler", "triggerer"):
            # Airflow's log servers listen on every interface; tests stay on loopback and read log files.
            argv.append("--skip-serve-logs")
        self._spawn(name, argv, env)
        self._down.discard(name)

    def _start_worker(self, name: str) -> None:
        """A Celery worker with its own temporary folder (``TMPDIR``): nothing it writes is seen by another."""
        temp = self.home / f"{name}-tmp"
        temp.mkdir(exist_ok=True)
        argv = [sys.executable, "-m", "airflow", "celery", "worker", "--celery-hostname", f"{name}@camb"]
        argv += ["--skip-serve-logs", "--without-mingle", "--without-gossip"]
        self._spawn(name, argv, {**self.env, "TMPDIR": str(temp)})
        self._down.discard(name)

    @property
    def worker_names(self) -> list[str]:
        return [name for name in self.components if name.startswith("celery-worker")]

    def wait_for_workers(self, timeout: float = 120.0) -> None:
        """Wait until every Celery worker has said it is ready."""

        def ready() -> bool:
            return all(
                " ready." in self.component_log(name)[self._processes[name].log_offset :] for name in self.worker_names
            )

        self._wait(ready, timeout, "every Celery worker ready")

    def worker_running(self, ti_id: str) -> str | None:
        """The Celery worker whose process tree runs task instance ``ti_id`` now (its title names the id)."""
        for name in self.worker_names:
            process = self._processes.get(name)
            if process is None or not process.alive():
                continue
            with contextlib.suppress(psutil.NoSuchProcess):
                for member in psutil.Process(process.popen.pid).children(recursive=True):  # type: ignore[union-attr]
                    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                        if ti_id in " ".join(member.cmdline()):
                            return name
        return None

    def stop_component(self, name: str, *, kill: bool = False, grace: float = 15.0) -> None:
        """Stop one component: SIGKILL at once with ``kill`` (a crash), else SIGTERM then SIGKILL."""
        process = self._processes[name]
        self._down.add(name)
        if kill:  # no SIGTERM first: the process gets no chance to clean up, as in a crash
            assert process.popen is not None
            with contextlib.suppress(psutil.NoSuchProcess):
                for member in psutil.Process(process.popen.pid).children(recursive=True):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        member.kill()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.popen.pid, signal.SIGKILL)
        _stop_groups([process], grace)

    def restart_airflow(self, env: dict[str, str], timeout: float | None = None) -> None:
        """Stop every Airflow component, add ``env`` to their environment, start them again, wait until healthy.

        The database, the stand-in and the DAG files stay: a cheaper way than a new deployment to run
        the same Airflow with another setting (e.g. a plugin's listener switched on).
        """
        airflow = [name for name in self.components if name not in self._down]
        self._down.update(airflow)  # check_alive leaves them be while they are down
        _stop_groups([self._processes[name] for name in airflow], 15.0)
        self.env = {**self.env, **env}
        for name in airflow:
            self.start_component(name)
            if name.startswith("triggerer") and len(self.triggerer_names) > 1:
                self._note_triggerer_job(name)
        self._token = None
        self.wait_until_healthy(self.start_timeout if timeout is None else timeout)

    def restart_triggerer(self, *, kill: bool = True, down_seconds: float = 0.0, name: str = "triggerer") -> None:
        """Kill -9 (or stop cleanly) a triggerer, optionally stay down a while, then start a new one."""
        self.stop_component(name, kill=kill)
        if down_seconds:
            time.sleep(down_seconds)
        self.start_component(name)
        if len(self.triggerer_names) > 1:
            self._note_triggerer_job(name)

    def _note_triggerer_job(self, name: str, timeout: float = 120.0) -> None:
        """Wait for the job row of the triggerer just started as ``name`` and remember its id."""
        known = set(self.triggerer_job_ids())
        found: list[int] = []

        def registered() -> bool:
            found[:] = [job for job in self.triggerer_job_ids() if job not in known]
            return bool(found)

        self._wait(registered, timeout, f"the job of {name}", poll=0.5)
        self._triggerer_jobs[name] = found[0]

    def triggerer_job_id(self, name: str = "triggerer") -> int:
        """The job id (``trigger.triggerer_id``) of the triggerer process running as ``name`` now.

        Known when the deployment runs several triggerers (they are started one at a time for it).
        """
        if name not in self._triggerer_jobs:
            raise DeploymentError(f"The job id of {name} is only known with triggerers >= 2.")
        return self._triggerer_jobs[name]

    def start_standin(self, port: int = 0, api_key: str | None = None, timeout: float = 30.0) -> StandIn:
        """Start ``python -m airflow_provider_camb.testing`` and read its addresses and key."""
        argv = [
            sys.executable,
            "-m",
            "airflow_provider_camb.testing",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--pending-seconds",
            str(self.pending_seconds),
            "--request-log",
            str(self.request_log),
            *(["--api-key", api_key] if api_key else []),
            *self._standin_args,
        ]
        env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW_CONN")}
        process = self._spawn("standin", argv, {**env, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while True:
            with process.log_path.open("rb") as log:
                log.seek(process.log_offset)
                announced = _read_announcement(log.read().decode(errors="replace"))
            if announced is not None:
                break
            if not process.alive() or time.monotonic() > deadline:
                raise DeploymentError(f"The stand-in did not start:\n{process.tail()}")
            time.sleep(0.1)
        base_url, preview_url, key, conn = announced
        self.standin = StandIn(base_url, preview_url, key, conn, CambStandInClient(base_url))
        return self.standin

    def stop_standin(self) -> None:
        """Stop the stand-in process (its tasks are lost; ``standin.client.outage(s)`` keeps them)."""
        _stop_groups([self._processes["standin"]], 5.0)

    def restart_standin(self) -> StandIn:
        """Start a new stand-in on the same port with the same key (so the connection stays valid)."""
        assert self.standin is not None
        port = int(self.standin.base_url.rsplit(":", 1)[1])
        self.stop_standin()
        self.standin.client.close()
        return self.start_standin(port=port, api_key=self.standin.api_key)

    def check_alive(self) -> None:
        """Raise ``DeploymentError`` with its log's tail if a component has exited."""
        for name in self.components:
            process = self._processes.get(name)
            if name not in self._down and process is not None and not process.alive():
                raise DeploymentError(
                    f"{name} exited with {process.popen.returncode if process.popen else '?'}:\n{process.tail()}"
                )

    def airflow(self, *args: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run an ``airflow`` CLI command in this deployment's environment."""
        result = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise DeploymentError(f"airflow {shlex.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
        return result

    # --- REST API ------------------------------------------------------------------------------

    def password(self, user: str) -> str:
        """A simple auth manager user's password, as the API server generated it."""
        generated = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
        return str(generated[user])

    def token(self, user: str | None = None) -> str:
        """A JWT for the REST API: ``user`` logged in with their password (``POST /auth/token``), else an admin."""
        if user is None and self.users:
            user = next(name for name, role in self.users.items() if role.upper() == "ADMIN")
        if user is None:
            reply = self._http.get(f"{self.api_url}/auth/token", timeout=10)
        else:
            login = {"username": user, "password": self.password(user)}
            reply = self._http.post(f"{self.api_url}/auth/token", json=login, timeout=10)
        reply.raise_for_status()
        return str(reply.json()["access_token"])

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the REST API (``/api/v2`` + path) as an admin; return the JSON reply."""
        if self._token is None:
            self._token = self.token()
        # A GET is asked again when a busy machine makes the API server slow, or its database
        # session fails once (a 5xx "Database error" was seen at load average 30): it reads, changes nothing.
        for attempt in range(3):
            try:
                reply = self._http.request(
                    method,
                    f"{self.api_url}/api/v2{path}",
                    headers={"Authorization": f"Bearer {self._token}"},
                    timeout=60,
                    **kwargs,
                )
            except (requests.Timeout, requests.ConnectionError):
                if method != "GET" or attempt == 2:
                    raise
                continue
            if method != "GET" or reply.status_code < 500 or attempt == 2:
                break
            time.sleep(1.0)  # a pause between two reads of a read-only endpoint, not a synchronisation
        if reply.status_code >= 400:
            raise DeploymentError(f"{method} {path}: {reply.status_code} {reply.text[:2000]}")
        return reply.json() if reply.content else None

    def health(self) -> dict[str, Any]:
        """``/api/v2/monitor/health``: the status of the database, scheduler, triggerer, dag-processor."""
        reply = self._http.get(f"{self.api_url}/api/v2/monitor/health", timeout=5)
        reply.raise_for_status()
        found: dict[str, Any] = reply.json()
        return found

    def wait_until_healthy(self, timeout: float = 120.0) -> None:
        """Wait until the API answers and every component reports a fresh heartbeat."""

        def healthy() -> bool:
            try:
                report = self.health()
            except requests.RequestException:
                return False
            return all(
                (report.get(part) or {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            )

        self._wait(healthy, timeout, "every component healthy")

    def wait_for_dag(self, dag_id: str, timeout: float = 90.0) -> None:
        """Wait until the dag-processor has parsed ``dag_id`` (raise with its import errors if any)."""

        def parsed() -> bool:
            try:
                self.api("GET", f"/dags/{dag_id}")
            except DeploymentError:
                errors = self.api("GET", "/importErrors").get("import_errors", [])
                if errors:
                    raise DeploymentError(f"Import errors: {json.dumps(errors, indent=1)}") from None
                return False
            return True

        self._wait(parsed, timeout, f"DAG {dag_id} parsed")

    # --- runs ----------------------------------------------------------------------------------

    def trigger(
        self, dag_id: str, conf: dict[str, Any] | None = None, *, run_id: str | None = None, via: str = "cli"
    ) -> str:
        """Unpause ``dag_id`` and trigger a run; return its run id.

        ``via="cli"`` (default) runs ``airflow dags unpause`` and ``airflow dags trigger`` as a user would
        (about 8 s of CLI start-up); ``via="api"`` does the same through the REST API in milliseconds.
        """
        self.wait_for_dag(dag_id)
        run_id = run_id or f"manual__{uuid.uuid4().hex[:12]}"
        if via == "cli":
            self.airflow("dags", "unpause", dag_id)
            self.airflow("dags", "trigger", dag_id, "--run-id", run_id, "--conf", json.dumps(conf or {}))
        elif via == "api":
            self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
            self.api(
                "POST", f"/dags/{dag_id}/dagRuns", json={"dag_run_id": run_id, "logical_date": None, "conf": conf or {}}
            )
        else:
            raise ValueError(f"via must be 'cli' or 'api', not {via!r}")
        return run_id

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        """The state of a DAG run (``queued``, ``running``, ``success``, ``failed``)."""
        found = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}").get("state")
        return None if found is None else str(found)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of a run as the REST API describes it (all pages)."""
        found: list[dict[str, Any]] = []
        while True:
            page = self.api(
                "GET",
                f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                params={"limit": 100, "offset": len(found), "order_by": "map_index"},
            )
            found += page["task_instances"]
            if not page["task_instances"] or len(found) >= page["total_entries"]:
                return found

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """``{"task": state}``, mapped instances as ``"task[3]"`` (as ``DagRunResult.task_states``)."""
        states: dict[str, str | None] = {}
        for ti in self.task_instances(dag_id, run_id):
            key = ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]"
            states[key] = ti["state"]
        return states

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        """One XCom value, read through the REST API."""
        entry = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"map_index": map_index, "deserialize": True, "stringify": False},
        )
        return entry["value"]

    def wait_for_task_state(
        self, dag_id: str, run_id: str, task_id: str, states: str | Iterable[str], timeout: float = 120.0
    ) -> str:
        """Wait until ``task_id`` (or ``"task[i]"``) is in one of ``states``; return the state reached."""
        wanted = {states} if isinstance(states, str) else set(states)
        reached: list[str] = []

        def check() -> bool:
            state = self.task_states(dag_id, run_id).get(task_id)
            if state in wanted:
                reached.append(state)
                return True
            if self.run_state(dag_id, run_id) in TERMINAL_RUN_STATES:
                raise DeploymentError(
                    f"Run {run_id} ended before {task_id} reached {sorted(wanted)}: "
                    f"{self.task_states(dag_id, run_id)}\n{self.diagnostics()}"
                )
            return False

        self._wait(check, timeout, f"{task_id} in {sorted(wanted)}", poll=0.5)
        return reached[0]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300.0) -> str:
        """Wait until the run is ``success`` or ``failed``; return that state."""
        reached: list[str] = []

        def done() -> bool:
            state = self.run_state(dag_id, run_id)
            if state in TERMINAL_RUN_STATES:
                reached.append(state)
                return True
            return False

        self._wait(done, timeout, f"run {run_id} of {dag_id} finished")
        return reached[0]

    def _wait(self, condition: Callable[[], bool], timeout: float, what: str, poll: float = 1.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            self.check_alive()
            if time.monotonic() > deadline:
                raise DeploymentError(f"Timed out after {timeout:.0f} s waiting for {what}.\n{self.diagnostics()}")
            time.sleep(poll)

    # --- evidence ------------------------------------------------------------------------------

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Read the metadata database directly, read-only, on PostgreSQL or SQLite alike (``?`` placeholders)."""
        values = tuple(params)
        if self.postgres is not None:
            return self._query_postgres(sql, values)
        for attempt in range(20):  # retried while Airflow holds SQLite's lock
            try:
                with contextlib.closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)) as db:
                    cursor = db.execute(sql, values)
                    names = tuple(column[0] for column in cursor.description or ())
                    return [Row.of(names, row) for row in cursor.fetchall()]
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or attempt == 19:
                    raise
                time.sleep(0.2)
        raise AssertionError("unreachable")

    def _query_postgres(self, sql: str, values: tuple[Any, ...]) -> list[Row]:
        import psycopg2

        assert self.postgres is not None
        if values:  # psycopg2's placeholders are %s, and a literal % is written %%
            sql = sql.replace("%", "%%").replace("?", "%s")
        with contextlib.closing(psycopg2.connect(self.postgres.dsn())) as db:
            db.set_session(readonly=True, autocommit=True)
            with db.cursor() as cursor:
                cursor.execute(sql, values or None)
                names = tuple(column[0] for column in cursor.description or ())
                return [Row.of(names, row) for row in cursor.fetchall()]

    def table_names(self) -> list[str]:
        """Every table of the metadata database."""
        if self.postgres is not None:
            sql = "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        else:
            sql = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1"
        return [str(row["name"]) for row in self.query(sql)]

    def trigger_rows(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """The trigger rows of a task's instances right now: classpath, triggerer job id, creation time."""
        rows = self.query(
            "SELECT ti.map_index, t.id, t.classpath, t.triggerer_id, t.created_date FROM task_instance ti "
            "JOIN trigger t ON t.id = ti.trigger_id WHERE ti.dag_id = ? AND ti.run_id = ? AND ti.task_id = ?",
            (dag_id, run_id, task_id),
        )
        return [dict(row) for row in rows]

    def triggerer_job_ids(self) -> list[int]:
        """The ids of every triggerer job that has run in this deployment."""
        return [row["id"] for row in self.query("SELECT id FROM job WHERE job_type = 'TriggererJob' ORDER BY id")]

    def log_files(self) -> list[Path]:
        """Every log file: components, the stand-in, task logs (including trigger logs)."""
        roots = [self.component_logs, self.home / "logs"]
        return sorted(path for root in roots if root.exists() for path in root.rglob("*") if path.is_file())

    def component_log(self, name: str) -> str:
        """The whole output of one component (``triggerer``, ``scheduler``, ``standin``...)."""
        return (self.component_logs / f"{name}.log").read_text(errors="replace")

    def task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
        """Every attempt's log of one task instance, concatenated (read from disk)."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            folder = folder / f"map_index={map_index}"
        files = sorted(path for path in folder.glob("attempt=*") if path.is_file()) if folder.exists() else []
        return "\n".join(path.read_text(errors="replace") for path in files)

    def worker_runs(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> int:
        """How many times a worker ran the task's code: one "startup parse complete" per run in its log.

        A worker that finds no DAG at start-up has Airflow reschedule the task without running it (seen on
        a loaded machine); such starts run none of our code and are not counted.
        """
        return self.task_log(dag_id, run_id, task_id, map_index).count("Worker startup parse complete")

    def database_files(self) -> list[Path]:
        """The metadata database's files: SQLite's file with its WAL/journal, or PostgreSQL's data folder."""
        if self.postgres is not None and self.postgres.data_dir is not None:
            return sorted(path for path in self.postgres.data_dir.rglob("*") if path.is_file())
        return sorted(self.home.glob("airflow.db*"))

    def files_containing(self, needle: str, *, include_standin: bool = False) -> list[Path]:
        """Every log file and database file whose bytes contain ``needle``.

        The stand-in's own output (which announces its key) is left out unless ``include_standin``.
        """
        data = needle.encode()
        candidates = [*self.log_files(), *self.database_files()]
        if not include_standin:
            candidates = [path for path in candidates if path != self.component_logs / "standin.log"]
        return [path for path in candidates if path.is_file() and data in path.read_bytes()]

    def standin_requests(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """The requests the stand-in received (its JSON-lines request log)."""
        if not self.request_log.exists():
            return []
        found = [json.loads(line) for line in self.request_log.read_text().splitlines() if line.strip()]
        return [entry for entry in found if endpoint is None or entry.get("endpoint") == endpoint]

    def diagnostics(self, lines: int = 30) -> str:
        """The tail of every component's log, for failure messages."""
        return "\n".join(f"--- {name} ---\n{process.tail(lines)}" for name, process in self._processes.items())


_WATCHDOG = """
import os, signal, sys, time
parent, groups = int(sys.argv[1]), sys.argv[2]
def gone():
    try:
        os.kill(parent, 0)
        with open(f"/proc/{parent}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"  # a zombie is dead too
    except ProcessLookupError:
        return True
    except OSError:
        return False
while os.path.exists(groups):
    if gone():
        for line in open(groups).read().split():
            try:
                os.killpg(int(line), signal.SIGKILL)
            except (ProcessLookupError, PermissionError, ValueError):
                pass
        break
    time.sleep(1)
"""


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _read_announcement(text: str) -> tuple[str, str, str, str] | None:
    """The stand-in's start-up lines: API URL, preview URL, key and the connection JSON."""
    values: dict[str, str] = {}
    prefixes = {
        "CAMB stand-in API:": "api",
        "CAMB stand-in previews:": "previews",
        "API key:": "key",
    }
    for line in text.splitlines():
        for prefix, name in prefixes.items():
            if line.startswith(prefix):
                values[name] = line[len(prefix) :].strip()
        if line.startswith("AIRFLOW_CONN_CAMB_DEFAULT="):
            values["conn"] = shlex.split(line.partition("=")[2])[0]
    if len(values) < 4:
        return None
    return values["api"], values["previews"], values["key"], values["conn"]


@contextlib.contextmanager
def deployment(**kwargs: Any) -> Iterator[AirflowDeployment]:
    """``with deployment(dags=[...]) as airflow:`` — started, and stopped however the block ends."""
    airflow = AirflowDeployment(**kwargs)
    try:
        yield airflow.start()
    finally:
        airflow.stop()
