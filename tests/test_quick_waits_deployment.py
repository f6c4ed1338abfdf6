"""Quick waits in a real deployment: scheduler (LocalExecutor), triggerer, dag-processor and API server of Airflow 3.

The case that lost tasks (apache/airflow#72716): many mapped waits whose CAMB tasks finish a second or
two after the sensors defer. A resumed attempt could be queued before the scheduler read the stale
"success" of the worker that deferred, and the scheduler then failed it. Each case runs 40 such waits in
3 DAG runs, one after another, and every task of every run must succeed:

- ending in the triggerer (the default): no resumed attempt, so nothing to race;
- resuming on a worker, create -> wait -> download: without listeners (``end_from_trigger=False``), then
  with OpenLineage's listener on, where the default resumes on a worker. ``resume_margin`` holds each
  trigger's event until the deferring worker's exit was read (docs/ending-waits.md); each wait must have
  held it, and OpenLineage's event of each download must name the files it wrote;
- a wait started in the triggerer (``start_from_trigger``) runs no worker at all, for both forms of the
  create task's XCom that Airflow 3.3 can render there.

One deployment serves every case: OpenLineage's file transport is configured from the start and
switched on and off with ``[openlineage] disabled`` and a restart of every Airflow component, which is
cheaper than a second deployment. Run alone with ``pytest -m deployment``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.deployment import DEPLOYMENT_TESTS
from tests.deployment_dags import mapped_create_wait_download, waits_for_listed_tasks
from tests.shared import DESCRIPTION, wait_until

pytestmark = DEPLOYMENT_TESTS

VOICES = 40
RUNS = 3
#: Tasks a stand-in creates end this long after their first status read: the sensor's check just before
#: it defers, so its trigger's first poll, 1-2 s after the deferral, finds them done however busy the machine.
PENDING_SECONDS = 1.0
#: What a trigger logs when it holds an event that resumes its task on a worker (resume_margin).
HELD = "Resuming the Airflow task on a worker in"
OPENLINEAGE_DISABLED = "AIRFLOW__OPENLINEAGE__DISABLED"


QUICK_DAG_ID = "camb_quick_waits"
QUICK_DAG = waits_for_listed_tasks(QUICK_DAG_ID, poll_interval=1, timeout=900, max_active_tasks=256)

START_DAG_ID = "camb_start_in_triggerer"
START_DAG = f"""
import pendulum
from airflow.sdk import DAG
from airflow_provider_camb.operators.text_to_voice import TextToVoiceOperator
from airflow_provider_camb.sensors.text_to_voice import TextToVoiceStatusSensor

with DAG("{START_DAG_ID}", start_date=pendulum.datetime(2024, 1, 1), schedule=None) as dag:
    create = TextToVoiceOperator(task_id="create", text="Hello there.", voice_description={DESCRIPTION!r})
    TextToVoiceStatusSensor(
        task_id="wait_output", camb_task_id=create.output, poll_interval=1, start_from_trigger=True, timeout=600
    )
    TextToVoiceStatusSensor(
        task_id="wait_jinja",
        camb_task_id="{{{{ ti.xcom_pull(task_ids='create', map_indexes=-1) }}}}",
        poll_interval=1,
        start_from_trigger=True,
        timeout=600,
    ).set_upstream(create)
"""


@pytest.fixture(scope="module")
def openlineage_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where OpenLineage's file transport writes, one file per event, while its listener is on."""
    return tmp_path_factory.mktemp("openlineage")


@pytest.fixture(scope="module")
def deployment(openlineage_events: Path) -> Iterator[Any]:
    from tests.deployment import AirflowDeployment

    # debug_mode: one file per event, named by time, job and type (no two processes append to one file)
    transport = {"type": "file", "log_file_path": str(openlineage_events / "event"), "debug_mode": True}
    env = {"AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport), OPENLINEAGE_DISABLED: "True"}
    with AirflowDeployment(
        pending_seconds=PENDING_SECONDS, standin_args=["--pending-from-first-status"], env=env
    ) as airflow:
        airflow.add_dag(f"{QUICK_DAG_ID}.py", QUICK_DAG)
        airflow.add_dag(f"{START_DAG_ID}.py", START_DAG)
        yield airflow


def openlineage(deployment: Any, *, on: bool) -> Any:
    """The deployment with OpenLineage's listener on or off (Airflow restarted when that changes)."""
    disabled = str(not on)
    if deployment.env[OPENLINEAGE_DISABLED] != disabled:
        deployment.restart_airflow({OPENLINEAGE_DISABLED: disabled})
    return deployment


@pytest.fixture
def airflow(deployment: Any) -> Any:
    """The deployment without listeners."""
    return openlineage(deployment, on=False)


@pytest.fixture
def airflow_with_openlineage(deployment: Any) -> Any:
    """The deployment with OpenLineage's listener on."""
    return openlineage(deployment, on=True)


def finish_each_soon_after_it_defers(airflow: Any, run_id: str, camb_task_ids: list[str], timeout: float) -> None:
    """Let each CAMB task succeed as soon as its sensor is seen deferred: its trigger fires 1-2 s later.

    How long a worker takes to start a task varies a lot on a loaded machine, so a fixed time from
    creation would often let the task finish before its sensor even checked (and it would never defer).
    """
    pending = dict(enumerate(camb_task_ids))
    deadline = time.monotonic() + timeout
    while pending:
        states = airflow.task_states(QUICK_DAG_ID, run_id)
        for index in [i for i in pending if states.get(f"wait[{i}]") == "deferred"]:
            airflow.standin.client.add_task(task_id=pending.pop(index), status="SUCCESS")
        settled = {i for i in pending if states.get(f"wait[{i}]") in ("success", "failed", "upstream_failed")}
        assert not settled, f"waits ended before they deferred: {sorted(settled)}\n{airflow.diagnostics()}"
        assert time.monotonic() < deadline, (
            f"not deferred after {timeout} s: {sorted(pending)}\n{airflow.diagnostics()}"
        )
        time.sleep(0.3)


def test_quick_waits_succeed_in_every_run_and_each_wait_starts_one_worker(airflow: Any, tmp_path: Path) -> None:
    for number in range(RUNS):
        camb_task_ids = [airflow.standin.client.add_task(status="PENDING") for _ in range(VOICES)]
        destination = tmp_path / f"run-{number}"
        conf = {"camb_task_ids": camb_task_ids, "destination": str(destination)}
        run_id = airflow.trigger(QUICK_DAG_ID, conf, via="api")
        finish_each_soon_after_it_defers(airflow, run_id, camb_task_ids, timeout=600)
        assert airflow.wait_for_run(QUICK_DAG_ID, run_id, timeout=900) == "success", airflow.diagnostics()
        states = airflow.task_states(QUICK_DAG_ID, run_id)
        not_successful = {key: state for key, state in states.items() if state != "success"}
        assert not not_successful, f"run {number}: {not_successful}\n{airflow.diagnostics()}"
        assert len([key for key in states if key.startswith("wait[")]) == VOICES
        files = list(destination.iterdir())  # two whole previews per voice, and nothing else
        assert len(files) == 2 * VOICES and all(re.fullmatch(r"camb_run_\d+_preview_[01]\.wav", f.name) for f in files)
        runs = {i: airflow.worker_runs(QUICK_DAG_ID, run_id, "wait", i) for i in range(VOICES)}
        resumed = sorted(i for i, count in runs.items() if count != 1)
        assert not resumed, (
            f"run {number}: waits not run on a worker exactly once: {resumed}\n"
            + airflow.task_log(QUICK_DAG_ID, run_id, "wait", resumed[0])[-6000:]
        )
        # Every wait ended in the triggerer. The triggerer writes a trigger's log file on its own schedule,
        # which may be after the run is seen done: so read until every line is there, with a deadline.
        wait_until(
            lambda run_id=run_id: all(
                "Ending the Airflow task here" in airflow.task_log(QUICK_DAG_ID, run_id, "wait", i)
                for i in range(VOICES)
            ),
            f"run {number}: every wait's log to say it ended in the triggerer",
            timeout=120,
            poll=1,
        )


def test_a_wait_started_in_the_triggerer_runs_no_worker(airflow: Any) -> None:
    run_id = airflow.trigger(START_DAG_ID, via="api")
    assert airflow.wait_for_run(START_DAG_ID, run_id, timeout=300) == "success", airflow.diagnostics()
    run = airflow.xcom(START_DAG_ID, run_id, "wait_output")
    camb_task_id = airflow.xcom(START_DAG_ID, run_id, "create")
    status = requests.get(  # what CAMB (the stand-in) says about the task the create made
        f"{airflow.standin.base_url}/text-to-voice/{camb_task_id}",
        headers={"x-api-key": airflow.standin.api_key},
        timeout=30,
    ).json()
    assert run == status["run_id"] and status["status"] == "SUCCESS"
    for task_id in ("wait_output", "wait_jinja"):
        assert airflow.xcom(START_DAG_ID, run_id, task_id) == run
        assert airflow.xcom(START_DAG_ID, run_id, task_id, key="run_id") == run
        assert airflow.worker_runs(START_DAG_ID, run_id, task_id) == 0, task_id
        assert "Ending the Airflow task here" in airflow.task_log(START_DAG_ID, run_id, task_id)
    assert airflow.worker_runs(START_DAG_ID, run_id, "create") == 1  # the count does count


# --- resuming on a worker --------------------------------------------------------------------------


def run_resuming_waits_three_times(airflow: Any, dag_id: str, wait_arguments: str, destination: Path) -> list[Path]:
    """Three runs of create -> wait -> download, one after another; return each run's destination.

    Every task of every run succeeds; each wait ran on a worker twice (deferred, resumed) and held its
    event, so each CAMB task ended inside the margin: the race was on, every time.
    """
    source = mapped_create_wait_download(
        dag_id, voices=VOICES, poll_interval=1, timeout=900, max_active_tasks=256, wait_arguments=wait_arguments
    )
    airflow.add_dag(f"{dag_id}.py", source)
    destinations = []
    for number in range(RUNS):
        destinations.append(destination / f"run-{number}")
        run_id = airflow.trigger(dag_id, {"destination": str(destinations[-1])}, via="api")
        airflow.wait_for_run(dag_id, run_id, timeout=1200)
        states = airflow.task_states(dag_id, run_id)
        not_successful = {key: state for key, state in states.items() if state != "success"}
        assert not not_successful, f"run {number}: {not_successful}\n{airflow.diagnostics()}"
        assert len([key for key in states if key.startswith("wait[")]) == VOICES
        assert len(list(destinations[-1].glob("camb_run_*_preview_*.wav"))) == 2 * VOICES
        not_resumed = [i for i in range(VOICES) if airflow.worker_runs(dag_id, run_id, "wait", i) != 2]
        assert not not_resumed, (
            f"run {number}: waits not run on a worker exactly twice (defer, resume): {not_resumed}\n"
            + airflow.task_log(dag_id, run_id, "wait", not_resumed[0])[-6000:]
        )
        wait_until(  # the triggerer writes its log files on its own schedule (see above)
            lambda run_id=run_id: all(HELD in airflow.task_log(dag_id, run_id, "wait", i) for i in range(VOICES)),
            f"run {number}: every wait's log to say it held its event",
            timeout=120,
            poll=1,
        )
    return destinations


def test_quick_waits_that_resume_on_a_worker_succeed_in_every_run(airflow: Any, tmp_path: Path) -> None:
    run_resuming_waits_three_times(airflow, "camb_resume_on_worker", ", end_from_trigger=False", tmp_path)


def test_with_openlineage_quick_waits_resume_on_a_worker_succeed_and_each_download_reports_its_files(
    airflow_with_openlineage: Any, openlineage_events: Path, tmp_path: Path
) -> None:
    dag_id = "camb_resume_with_openlineage"
    destinations = run_resuming_waits_three_times(airflow_with_openlineage, dag_id, "", tmp_path)
    events = [json.loads(path.read_text()) for path in openlineage_events.iterdir()]
    reported = sorted(
        sorted(output["name"] for output in event["outputs"])
        for event in events
        if event.get("eventType") == "COMPLETE" and event["job"]["name"] == f"{dag_id}.download"
    )
    written: dict[str, list[str]] = {}  # CAMB run id -> its files
    for path in sorted(path for folder in destinations for path in folder.glob("camb_run_*_preview_*.wav")):
        written.setdefault(re.sub(r"_preview_\d+\.wav$", "", path.name), []).append(str(path))
    assert reported == sorted(written.values())  # one COMPLETE event per download, naming exactly its files
    api_key = airflow_with_openlineage.standin.api_key
    assert not [path for path in openlineage_events.iterdir() if api_key in path.read_text()]
