"""Test data and small helpers shared by the test modules: one copy of each.

The fast-backoff connection to the stand-in is the ``camb_connection`` fixture of ``conftest.py``;
``connect`` below makes it, and any other connection to a stand-in with other settings. Everything
else here is plain data or a function over the stand-in's record.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import re
import socket
import time
import uuid
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_camb.kinds import TEXT_TO_VOICE
from airflow_provider_camb.operators.camb_result import CambResultOperator
from airflow_provider_camb.operators.camb_task import CambTaskOperator
from airflow_provider_camb.testing import CambStandIn
from airflow_provider_camb.triggers.camb_task import CambTaskTrigger

TEXT = "Hello from Airflow. This is how I sound."
DESCRIPTION = (
    "A warm, calm middle-aged female narrator with a soft British accent, speaking slowly and clearly, "
    "with a gentle and friendly tone suited to bedtime stories."
)
#: A media link with a secret in its query, as users pass them to dubbing.
VIDEO = "https://media.example.com/films/trailer.mp4?signature=s3cr3t"
#: The connection extra of ``camb_connection``: 2 retries, backoff in milliseconds.
FAST_RETRIES: dict[str, float] = {"retries": 2, "backoff": 0.01, "backoff_max": 0.05}
#: The first voice id the stand-in hands out (``create-custom-voice``).
FIRST_VOICE_ID = 5000
#: The file the uploading kinds' tests upload (the ``media`` fixture): a WAV header, then silence. The stand-in
#: only hashes an upload.
MEDIA = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(4096)
#: The example DAGs users copy.
EXAMPLES = Path(__file__).resolve().parent.parent / "example_dags"

#: Unique numbers for dag ids: every DAG of a session needs its own.
ids = itertools.count()


class FakeTaskInstance:
    """Just enough of a task instance for ``execute()``: it keeps what is pushed to XCom."""

    try_number, max_tries = 1, 0  # the first try of a task without retries

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def example_source(path: Path, dag_id: str) -> str:
    """The example DAG's text under a unique dag_id, polling every second so the test does not idle."""
    source = path.read_text()
    source = source.replace(f'dag_id="{path.stem}"', f'dag_id="{dag_id}"')
    source = re.sub(r'(poll_interval"?(?:=|: ))\d+', r"\g<1>1", source)  # an argument or a default_args key
    assert f'dag_id="{dag_id}"' in source
    return source


def connect(
    monkeypatch: pytest.MonkeyPatch, standin: CambStandIn, conn_id: str = "camb_default", **extra: Any
) -> CambStandIn:
    """Make ``standin`` the Airflow connection ``conn_id`` (its environment variable).

    Its extra is ``FAST_RETRIES`` updated with ``extra`` (``retries=1``, ``timeout=5``, ...).
    """
    conn = {**json.loads(standin.connection_json()), "extra": {**FAST_RETRIES, **extra}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return standin


def context() -> dict[str, Any]:
    """A minimal context for calling ``operator.execute()`` directly."""
    return {"ti": FakeTaskInstance()}


def result_of(operator: type[CambResultOperator], run_id: Any, destination: Any, **options: Any) -> Any:
    """What the result operator class ``operator`` returns for ``run_id``, called directly (``execute()``)."""
    return operator(task_id="save", run_id=run_id, destination=destination, **options).execute(context())


def with_media(options: dict[str, Any], media: Path) -> dict[str, Any]:
    """``options`` of an uploading operator, its ``media_file`` made a path: ``"MEDIA"`` is the ``media``
    fixture's file, any other name a file beside it that does not exist."""
    name = options.get("media_file")
    if not name:
        return options
    return {**options, "media_file": str(media if name == "MEDIA" else media.parent / name)}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def wav_seconds(path: Path) -> float:
    """The length of one of the stand-in's WAV files (mono, 16 bit, 22050 Hz)."""
    with wave.open(str(path)) as audio:
        assert (audio.getnchannels(), audio.getsampwidth(), audio.getframerate()) == (1, 2, 22050)
        return audio.getnframes() / audio.getframerate()


def memory_folder() -> str:
    """A fresh folder on fsspec's in-memory filesystem, attached to Airflow's object storage (not local)."""
    from fsspec.implementations.memory import MemoryFileSystem

    try:
        from airflow.sdk.io import attach
    except ImportError:  # Airflow 2
        from airflow.io.store import attach
    attach("memory", fs=MemoryFileSystem())
    return f"memory://camb-tests/{uuid.uuid4().hex}"


def logged(capfd: pytest.CaptureFixture[str]) -> str:
    """What was printed since the last read (Airflow 3 logs to stdout through structlog, Airflow 2 to stderr)."""
    output = capfd.readouterr()
    return output.out + output.err


def run_id_of(camb_task_id: str, kind: str = TEXT_TO_VOICE.name) -> int:
    """The run id the stand-in gave a finished task, read over HTTP (``camb_default``) like any client."""
    from airflow_provider_camb.hooks.camb import CambHook

    return CambHook().get_task_status(kind, camb_task_id).run_id_or_raise()


def finished_run(standin: CambStandIn, kind: str = TEXT_TO_VOICE.name, **request: Any) -> int:
    """A SUCCESS run of ``kind`` (``request``: its create body); its run id. The stand-in's record is cleared."""
    run_id = run_id_of(standin.add_task(kind=kind, status="SUCCESS", request=request or None), kind)
    standin.clear_requests()
    return run_id


def waited_in_the_triggerer(output: str, camb_task_id: str, status: str = "SUCCESS") -> bool:
    """Whether a trigger's wait for ``camb_task_id`` ended with ``status``: the trigger's own log line.

    Only ``CambTaskTrigger`` logs it, so it appears only when the task deferred (``dag.test()`` then
    runs the trigger in line).
    """
    return f"CAMB task {camb_task_id} ended with {status} after" in output


def assert_deferred(output: str, camb_task_id: str, status: str = "SUCCESS") -> None:
    """The task deferred and its trigger waited for ``camb_task_id`` until ``status``."""
    assert waited_in_the_triggerer(output, camb_task_id, status), f"no trigger waited for {camb_task_id} to {status}"


def check_waited(result: Any, capfd: pytest.CaptureFixture[str], kind: str, deferrable: bool) -> tuple[int, str]:
    """The create task of a ``dag.test()`` run (the one with an XCom ``task_id``) waited as asked.

    It returned the run id CAMB gave its task (also as XCom ``run_id``), and it deferred exactly when
    ``deferrable``. Returns that run id and the logs read so far.
    """
    (create,) = {task for task, key in result.xcoms if key == "task_id"}
    camb_task_id = result.xcom(create, "task_id")
    run_id = result.xcom(create)
    assert run_id == run_id_of(camb_task_id, kind) == result.xcom(create, "run_id")
    logs = logged(capfd)
    assert waited_in_the_triggerer(logs, camb_task_id) is deferrable
    return run_id, logs


CREATE_AND_SAVE_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG, Asset
from {module} import {create}, {save}

with DAG("{dag_id}", start_date=pendulum.datetime(2024, 1, 1), schedule=None) as dag:
    create = {create}(
        task_id="create", {create_arguments},
        wait_for_completion=True, deferrable={deferrable}, poll_interval=0.3,
    )
    {save}(
        task_id="save", run_id=create.output, destination={destination!r}, outlets=[Asset("camb_{dag_id}")],
        {save_arguments}
    )
"""


def create_and_save_in_a_dag(
    run_dag: Any,
    standin: CambStandIn,
    capfd: pytest.CaptureFixture[str],
    destination: Path,
    create: type[CambTaskOperator],
    save: type[CambResultOperator],
    create_arguments: str,
    deferrable: bool,
    *,
    save_arguments: str = "",
) -> tuple[Any, int, str]:
    """Run ``CREATE_AND_SAVE_DAG``: ``create`` makes its CAMB task and waits for it, ``save`` saves the result.

    The arguments of both operators are source text. The first status check sees PENDING, so the wait
    really waits. Both tasks succeed, the wait deferred exactly when ``deferrable`` (``check_waited``),
    and ``save`` has the outlet ``camb_<dag_id>``. Returns the ``dag.test()`` result, the run id and the logs.
    The ``create_and_save`` fixture (conftest) passes the first four arguments.
    """
    pending_after_first_check(standin)
    source = CREATE_AND_SAVE_DAG.format(
        dag_id=f"{create.kind.name.replace('-', '_')}_flow_{next(ids)}",
        module=create.__module__,
        create=create.__name__,
        save=save.__name__,
        create_arguments=create_arguments,
        save_arguments=save_arguments,
        destination=str(destination),
        deferrable=deferrable,
    )
    result = run_dag.run(source, register_assets=True)
    assert result.task_states == {"create": "success", "save": "success"}
    run_id, logs = check_waited(result, capfd, create.kind.name, deferrable)
    return result, run_id, logs


def pending_after_first_check(standin: CambStandIn, pending_seconds: float = 1.0) -> None:
    """Tasks created from now on stay PENDING for ``pending_seconds`` after their first status read.

    So the check before deferring always finds them PENDING, however long ``dag.test()`` takes to start.
    """
    standin.configure(pending_from_first_status=True, pending_seconds=pending_seconds)


def text_to_voice_trigger(camb_task_id: Any, **kwargs: Any) -> CambTaskTrigger:
    """A ``CambTaskTrigger`` for a text-to-voice task that polls at once and then every 0.2 s (unless told)."""
    kwargs.setdefault("poll_interval", 0.2)
    kwargs.setdefault("wait_before_first_poll", False)
    return CambTaskTrigger(camb_task_id=camb_task_id, kind=TEXT_TO_VOICE.name, **kwargs)


async def trigger_events(trigger: CambTaskTrigger, limit: float = 20.0) -> list[dict[str, Any]]:
    """In the running loop: run ``trigger`` to its end; the payloads of its events. Fails after ``limit`` s."""
    async with asyncio.timeout(limit):
        return [dict(event.payload) async for event in trigger.run()]


def wait_until(condition: Callable[[], object], what: str, timeout: float = 30.0, poll: float = 0.02) -> None:
    """Wait until ``condition()`` is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(poll)


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on the loopback ``port`` (no HTTP request is sent)."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True
