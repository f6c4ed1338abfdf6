"""Resilience in a real deployment: scheduler, triggerer, dag-processor and API server of Airflow 3 in a
temporary AIRFLOW_HOME (``tests/deployment.py``), with the stand-in CLI as CAMB.

- kill -9 the triggerer while sensors are deferred and start a new one: every run still succeeds; a wait
  started in the triggerer (``start_from_trigger``) moves to the new triggerer with its deadline unchanged
  and still ends at its timeout, as a sensor timeout without retries;
- take the CAMB API away for 30 s while sensors are deferred: every run still succeeds;
- 200 sensors deferred at once in one triggerer all succeed (wall time and the triggerer's peak memory
  are printed, not asserted); a load run with CAMB_LOAD_TESTS=1, since CI's budget goes to
  ``test_topology_deployment.py``, which defers 300 waits over two triggerers and kills one;
- after a full create -> wait -> download run, the API key is in no table of the metadata database (trigger
  kwargs decrypted), no file under AIRFLOW_HOME and no request to the preview host.

The stand-in's tasks are created PENDING and only let finish once the sensors are seen deferred, so every
wait really happens in the triggerer (and Airflow 3.3's quick-trigger race, apache/airflow#72716, cannot
decide the outcome); sensors poll every 4 s. Run alone with ``pytest -m deployment``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.deployment import DEPLOYMENT_TESTS
from tests.deployment_dags import create_wait_download, waits_for_listed_tasks
from tests.shared import listening, wait_until

pytestmark = DEPLOYMENT_TESTS

POLL_INTERVAL = 4
OUTAGE_SECONDS = 30
LOAD = 200
#: The timeout of the wait started in the triggerer: long enough for its trigger to move to a new
#: triggerer first (the killed one's heartbeat must be 30 s old before its triggers are taken over).
STARTED_WAIT_TIMEOUT = 150

WAIT_DAG_ID = "camb_resilience_wait"
WAIT_DAG = waits_for_listed_tasks(WAIT_DAG_ID, poll_interval=POLL_INTERVAL, timeout=1800, download=False)

STARTED_DAG_ID = "camb_resilience_started_in_the_triggerer"
STARTED_DAG = f"""
import pendulum
from airflow.sdk import DAG
from airflow_provider_camb.sensors.text_to_voice import TextToVoiceStatusSensor

with DAG("{STARTED_DAG_ID}", start_date=pendulum.datetime(2024, 1, 1), schedule=None, params={{"camb_task_id": ""}}):
    TextToVoiceStatusSensor(
        task_id="wait",
        camb_task_id="{{{{ params.camb_task_id }}}}",
        poll_interval={POLL_INTERVAL},
        start_from_trigger=True,
        timeout={STARTED_WAIT_TIMEOUT},
        retries=2,
    )
"""

WORKFLOW_DAG_ID = "camb_resilience_workflow"
WORKFLOW_DAG = create_wait_download(WORKFLOW_DAG_ID, poll_interval=POLL_INTERVAL)


@pytest.fixture(scope="module")
def airflow() -> Iterator[Any]:
    """One deployment for the module: starting it costs about a minute."""
    from tests.deployment import AirflowDeployment

    with AirflowDeployment(pending_seconds=12) as deployment:
        deployment.add_dag(f"{WAIT_DAG_ID}.py", WAIT_DAG)
        deployment.add_dag(f"{STARTED_DAG_ID}.py", STARTED_DAG)
        deployment.add_dag(f"{WORKFLOW_DAG_ID}.py", WORKFLOW_DAG)
        yield deployment


# --- helpers -----------------------------------------------------------------------------------------


def _pending_tasks(airflow: Any, count: int) -> list[str]:
    """CAMB tasks that stay PENDING until ``_finish`` lets them succeed."""
    return [airflow.standin.client.add_task(status="PENDING") for _ in range(count)]


def _finish(airflow: Any, camb_task_ids: list[str]) -> None:
    for camb_task_id in camb_task_ids:
        airflow.standin.client.add_task(task_id=camb_task_id, status="SUCCESS")


def _sensor_states(airflow: Any, run_id: str) -> dict[str, str | None]:
    return {key: state for key, state in airflow.task_states(WAIT_DAG_ID, run_id).items() if key.startswith("wait[")}


def _wait_until_deferred(airflow: Any, runs: dict[str, int], timeout: float) -> float:
    """Wait until every mapped sensor of every run is deferred at the same time; return the seconds it took."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        states = {run_id: _sensor_states(airflow, run_id) for run_id in runs}
        if all(len(found) == runs[run_id] and set(found.values()) == {"deferred"} for run_id, found in states.items()):
            return time.monotonic() - started
        failed = {run_id: s for run_id, s in states.items() if {"failed", "upstream_failed"} & set(s.values())}
        assert not failed, f"sensors failed before deferring: {failed}\n{airflow.diagnostics()}"
        airflow.check_alive()
        assert time.monotonic() < deadline, f"not all deferred after {timeout} s: {states}\n{airflow.diagnostics()}"
        time.sleep(1)


def _trigger_waits(airflow: Any, batches: list[list[str]]) -> dict[str, int]:
    """One run of the waiting DAG per batch of CAMB task ids; return {run_id: number of sensors}."""
    return {airflow.trigger(WAIT_DAG_ID, {"camb_task_ids": batch}, via="api"): len(batch) for batch in batches if batch}


def _assert_all_succeed(airflow: Any, runs: dict[str, int], timeout: float) -> None:
    for run_id, count in runs.items():
        assert airflow.wait_for_run(WAIT_DAG_ID, run_id, timeout=timeout) == "success", airflow.diagnostics()
        states = _sensor_states(airflow, run_id)
        assert len(states) == count and set(states.values()) == {"success"}, states


def _polled_since(airflow: Any, camb_task_ids: list[str], since: float) -> set[str]:
    """The CAMB task ids whose status was asked for after ``since`` (epoch seconds)."""
    wanted = set(camb_task_ids)
    return {r["path_id"] for r in airflow.standin_requests("status") if r["time"] > since and r["path_id"] in wanted}


def _wait_for_polls(airflow: Any, camb_task_ids: list[str], since: float, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _polled_since(airflow, camb_task_ids, since) != set(camb_task_ids):
        assert time.monotonic() < deadline, "the triggerer never polled some tasks"
        time.sleep(0.5)


def _started_wait(airflow: Any, run_id: str) -> dict[str, Any]:
    """The started-in-the-triggerer wait's task instance: state, tries, Airflow's deadline, and its trigger."""
    rows = airflow.query(
        "SELECT ti.state, ti.try_number, ti.trigger_timeout, t.triggerer_id FROM task_instance ti "
        "LEFT JOIN trigger t ON t.id = ti.trigger_id WHERE ti.dag_id = ? AND ti.run_id = ? AND ti.task_id = 'wait'",
        (STARTED_DAG_ID, run_id),
    )
    return dict(rows[0]) if rows else {}


def _wait_until_held(airflow: Any, run_id: str, by: Callable[[Any], bool], timeout: float) -> dict[str, Any]:
    """Wait until the started wait is deferred and its trigger is held by a triggerer for which ``by`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        found = _started_wait(airflow, run_id)
        if found.get("state") == "deferred" and found.get("triggerer_id") is not None and by(found["triggerer_id"]):
            return found
        assert found.get("state") in (None, "scheduled", "queued", "deferred"), f"{found}\n{airflow.diagnostics()}"
        assert time.monotonic() < deadline, f"not held after {timeout} s: {found}\n{airflow.diagnostics()}"
        time.sleep(1)


def _utc(value: Any) -> datetime:
    """A timestamp read from PostgreSQL (a datetime) or SQLite (text), as an aware UTC datetime."""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _deadline_logged(airflow: Any, run_id: str, triggerer_id: int, camb_task_id: str) -> datetime:
    """The deadline the started wait's trigger said it waits until, in the log of triggerer ``triggerer_id``."""
    folder = airflow.home / "logs" / f"dag_id={STARTED_DAG_ID}" / f"run_id={run_id}" / "task_id=wait"
    logs = "\n".join(path.read_text(errors="replace") for path in folder.glob(f"attempt=*.trigger.{triggerer_id}.log"))
    found = re.findall(rf"Waiting for CAMB task {re.escape(camb_task_id)} until (\S+), Airflow's timeout", logs)
    assert len(found) == 1, f"{found}\n{logs[-3000:]}"
    return datetime.fromisoformat(found[0])


def _triggerer_memory(airflow: Any) -> dict[str, int]:
    """VmHWM (peak resident set, kB) of the triggerer process and each of its descendants."""
    leader = psutil.Process(airflow._processes["triggerer"].pid)
    peaks: dict[str, int] = {}
    for process in [leader, *leader.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, OSError):
            status = Path(f"/proc/{process.pid}/status").read_text()
            peak = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
            role = "triggerer" if process.pid == leader.pid else f"child of {process.ppid()}"
            peaks[f"{process.pid} ({role}, {process.name()})"] = int(peak.split()[1])
    return peaks


# --- (a) a triggerer killed mid-wait ---------------------------------------------------------------


def test_every_run_succeeds_after_the_triggerer_is_killed_mid_wait(airflow: Any) -> None:
    (never_done,) = _pending_tasks(airflow, 1)  # the started wait's task: PENDING for ever
    started_run = airflow.trigger(STARTED_DAG_ID, {"camb_task_id": never_done}, via="api")
    camb_task_ids = _pending_tasks(airflow, 6)
    runs = _trigger_waits(airflow, [camb_task_ids[0:2], camb_task_ids[2:4], camb_task_ids[4:6]])
    _wait_until_deferred(airflow, runs, timeout=240)
    jobs_before = airflow.triggerer_job_ids()
    before = _wait_until_held(airflow, started_run, lambda job: job in jobs_before, timeout=120)

    airflow.restart_triggerer(kill=True)
    restarted = time.time()
    _finish(airflow, camb_task_ids)

    _assert_all_succeed(airflow, runs, timeout=300)
    assert len(airflow.triggerer_job_ids()) > len(jobs_before)  # a new triggerer took the waits over
    assert _polled_since(airflow, camb_task_ids, restarted) == set(camb_task_ids)

    # The wait started in the triggerer moved to the new triggerer with Airflow's deadline as it was ...
    moved = _wait_until_held(airflow, started_run, lambda job: job not in jobs_before, timeout=120)
    assert moved["trigger_timeout"] == before["trigger_timeout"] is not None
    _wait_for_polls(airflow, [never_done], since=restarted, timeout=60)  # ... the new one polls it ...
    # ... until that very deadline, not its own start plus the timeout (the trigger log of the new triggerer) ...
    assert _deadline_logged(airflow, started_run, moved["triggerer_id"], never_done) == _utc(before["trigger_timeout"])
    # ... and it still ends at that deadline: a sensor timeout, not retried although retries=2.
    assert airflow.wait_for_run(STARTED_DAG_ID, started_run, timeout=STARTED_WAIT_TIMEOUT + 120) == "failed"
    ended = _started_wait(airflow, started_run)
    assert (ended["state"], ended["try_number"]) == ("failed", 1), ended
    log = airflow.task_log(STARTED_DAG_ID, started_run, "wait")
    assert "AirflowSensorTimeout" in log or "CambWaitTimeoutError" in log, log[-3000:]


# --- (b) the CAMB API gone for 30 s ------------------------------------------------------------------


def test_every_run_succeeds_after_a_30_second_api_outage_mid_wait(airflow: Any) -> None:
    camb_task_ids = _pending_tasks(airflow, 6)
    runs = _trigger_waits(airflow, [camb_task_ids[0:2], camb_task_ids[2:4], camb_task_ids[4:6]])
    _wait_until_deferred(airflow, runs, timeout=240)
    _wait_for_polls(airflow, camb_task_ids, since=time.time(), timeout=60)  # every trigger is in its loop

    airflow.standin.client.outage(OUTAGE_SECONDS)
    port = int(airflow.standin.base_url.rsplit(":", 1)[1])
    wait_until(lambda: not listening(port), "the stand-in's outage beginning", timeout=10)
    wait_until(lambda: listening(port), "the stand-in listening again", timeout=OUTAGE_SECONDS + 60, poll=0.2)
    reopened = time.time()
    # Every trigger came back by itself: each polled its task again once the API answered ...
    _wait_for_polls(airflow, camb_task_ids, since=reopened, timeout=60)
    for run_id in runs:  # ... and the outage failed nothing: every sensor still waits
        assert set(_sensor_states(airflow, run_id).values()) == {"deferred"}
    _finish(airflow, camb_task_ids)

    _assert_all_succeed(airflow, runs, timeout=300)
    logs = "".join(path.read_text(errors="replace") for path in airflow.log_files() if "standin" not in path.name)
    assert "Could not reach CAMB" in logs  # the triggers felt the outage and retried


# --- (c) 200 sensors deferred at once ---------------------------------------------------------------


@pytest.mark.skipif(
    not os.environ.get("CAMB_LOAD_TESTS"),
    reason="a load run (CAMB_LOAD_TESTS=1); in CI, test_topology_deployment.py defers 300 waits over 2 triggerers",
)
def test_two_hundred_sensors_deferred_at_once_in_one_triggerer_all_succeed(airflow: Any) -> None:
    airflow.restart_triggerer(kill=False)  # a fresh process, so its peak memory is this test's
    airflow.wait_until_healthy(120)
    camb_task_ids = _pending_tasks(airflow, LOAD)

    started = time.monotonic()
    runs = _trigger_waits(airflow, [camb_task_ids])
    took_to_defer = _wait_until_deferred(airflow, runs, timeout=900)
    (run_id,) = runs
    in_one_triggerer = {row["triggerer_id"] for row in airflow.trigger_rows(WAIT_DAG_ID, run_id, "wait")}
    deferred_rows = len(airflow.trigger_rows(WAIT_DAG_ID, run_id, "wait"))
    _finish(airflow, camb_task_ids)
    _assert_all_succeed(airflow, runs, timeout=900)
    wall = time.monotonic() - started

    memory = _triggerer_memory(airflow)
    print(
        f"\nLOAD: {LOAD} deferred sensors; all deferred {took_to_defer:.1f} s after the trigger; "
        f"run done in {wall:.1f} s wall time; triggerer peak memory (VmHWM, kB): {memory}; "
        f"largest {max(memory.values()) / 1024:.1f} MiB, all together {sum(memory.values()) / 1024:.1f} MiB"
    )
    assert deferred_rows == LOAD
    assert len(in_one_triggerer - {None}) == 1


# --- (d) the key is stored nowhere ----------------------------------------------------------------


def _rows_as_text(airflow: Any) -> dict[str, str]:
    """Every table of the metadata database, every row, every column, as text."""
    text: dict[str, str] = {}
    for table in airflow.table_names():
        parts = []
        for row in airflow.query(f'SELECT * FROM "{table}"'):  # noqa: S608 - names from the database's catalogue
            for value in tuple(row):
                parts.append(value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value))
        text[table] = "\n".join(parts)
    return text


def _decrypted_trigger_kwargs(airflow: Any) -> list[str]:
    """Trigger kwargs are stored encrypted: decrypt them with the deployment's Fernet key."""
    from cryptography.fernet import Fernet

    fernet = Fernet(airflow.env["AIRFLOW__CORE__FERNET_KEY"].encode())
    found = []
    for row in airflow.query("SELECT * FROM trigger"):
        stored = dict(row).get("encrypted_kwargs") or dict(row).get("kwargs") or ""
        try:
            found.append(fernet.decrypt(stored.encode()).decode())
        except Exception:  # not encrypted (older schema): searched as it is
            found.append(str(stored))
    return found


def test_after_a_full_run_the_api_key_is_stored_nowhere(airflow: Any, tmp_path: Path) -> None:
    key = airflow.standin.api_key
    run_id = airflow.trigger(WORKFLOW_DAG_ID, {"destination": str(tmp_path / "voices")}, via="api")
    airflow.wait_for_task_state(WORKFLOW_DAG_ID, run_id, "wait", "deferred", timeout=180)
    kwargs_while_deferred = _decrypted_trigger_kwargs(airflow)
    assert airflow.wait_for_run(WORKFLOW_DAG_ID, run_id, timeout=300) == "success", airflow.diagnostics()
    assert len(list((tmp_path / "voices").iterdir())) == 2

    # the search looks for the right string: the API host did receive it
    assert any(r["headers"].get("x-api-key") == key for r in airflow.standin_requests("status"))
    camb_task_id = airflow.xcom(WORKFLOW_DAG_ID, run_id, "create")
    assert kwargs_while_deferred and any(camb_task_id in kwargs for kwargs in kwargs_while_deferred)

    assert [k for k in kwargs_while_deferred if key in k] == []
    assert [table for table, text in _rows_as_text(airflow).items() if key in text] == []
    stand_in_own = {airflow.component_logs / "standin.log", airflow.request_log}  # CAMB's side, not Airflow's
    files = [p for p in airflow.home.rglob("*") if p.is_file() and p not in stand_in_own]
    assert any(p.suffix == ".log" or ".log" in p.name for p in files)
    assert [p for p in files if key.encode() in p.read_bytes()] == []
    previews = [r for r in airflow.standin_requests() if r["server"] == "preview"]
    assert len(previews) >= 2
    assert [r for r in previews if key in json.dumps(r) or "x-api-key" in r["headers"]] == []
