"""A retry never pays twice, in a real deployment: scheduler (LocalExecutor), triggerer, dag-processor, API server.

A waiting create operator's worker (the task process and the supervisor above it) is killed with
``kill -9`` after its CAMB task was created. With ``[scheduler] task_instance_heartbeat_timeout`` lowered
the scheduler soon notices, retries the Airflow task, and try 2 reattaches: one CAMB task, and the task
succeeds. Then a person clears the task: Airflow leaves the task state store as it is, and the deliberate
rerun creates a new CAMB task. One deployment (SQLite), one DAG, one task.

Run alone: ``pytest -m deployment tests/test_retries_deployment.py``: 112 s on 2 cores at load 18, 171 s at
load 62 (start-up, one killed try found after the 15 s heartbeat timeout, its retry, the rerun).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psutil
import pytest

from tests.deployment import DEPLOYMENT_TESTS, AirflowDeployment

pytestmark = DEPLOYMENT_TESTS

DAG_ID = "camb_retries"
DAG = f'''
import pendulum
from datetime import timedelta
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_camb.operators.text_to_voice import TextToVoiceOperator

with DAG("{DAG_ID}", start_date=pendulum.datetime(2024, 1, 1), schedule=None, catchup=False) as dag:
    TextToVoiceOperator(
        task_id="create",
        text="Welcome aboard. Sit back, relax, and enjoy the journey with us today.",
        voice_description=(
            "A warm and friendly middle-aged female narrator with a calm, steady pace, a soft British accent "
            "and a clear, reassuring tone, suited to travel announcements and audiobooks."
        ),
        wait_for_completion=True,
        deferrable=False,  # the worker waits: killing it loses the wait
        poll_interval=1,
        retries=1,
        retry_delay=timedelta(seconds=0),
    )
'''


@pytest.fixture(scope="module")
def airflow(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowDeployment]:
    if "deployment" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("a real deployment takes a minute or two: run with -m deployment")
    dag = tmp_path_factory.mktemp("dags") / "camb_retries.py"
    dag.write_text(DAG)
    deployment = AirflowDeployment(
        dags=[dag],
        database="sqlite",
        pending_seconds=20,  # still PENDING when the worker dies
        env={
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "15",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        },
    )
    try:
        yield deployment.start()
    finally:
        deployment.stop()


def wait_for(condition: object, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def the_record(airflow: AirflowDeployment, run_id: str) -> dict[str, object]:
    """The task's record in Airflow's task state store, read from the metadata database."""
    (row,) = airflow.query(
        "SELECT value FROM task_state_store WHERE dag_id = ? AND run_id = ? AND task_id = 'create'", (DAG_ID, run_id)
    )
    record: dict[str, object] = json.loads(row["value"])
    return record


def kill_the_worker(airflow: AirflowDeployment, run_id: str) -> list[int]:
    """``kill -9`` the task's process and its supervisor (the LocalExecutor worker): the worker is gone."""
    (row,) = airflow.query(
        "SELECT pid FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = 'create'", (DAG_ID, run_id)
    )
    task = psutil.Process(row["pid"])
    supervisor = task.parent()
    assert supervisor is not None and "LocalExecutor" in " ".join(supervisor.cmdline()), supervisor
    killed = [task.pid, supervisor.pid]
    for pid in killed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return killed


@dataclass
class KilledRun:
    run_id: str
    first_task_id: str
    state: str


@pytest.fixture(scope="module")
def killed_run(airflow: AirflowDeployment) -> KilledRun:
    """Trigger the DAG, kill -9 its worker once its CAMB task was created and read, wait for the run's end."""
    assert airflow.standin is not None
    camb = airflow.standin.client
    run_id = airflow.trigger(DAG_ID, via="api")
    wait_for(lambda: camb.requests("create") and camb.requests("status"), "the create and a status read")
    first_task_id = str(camb.requests("status")[0]["path_id"])
    assert the_record(airflow, run_id)["camb_id"] == first_task_id  # kept before the wait began
    kill_the_worker(airflow, run_id)
    return KilledRun(run_id, first_task_id, airflow.wait_for_run(DAG_ID, run_id, timeout=240))


def test_a_worker_killed_mid_wait_is_retried_and_reattaches(airflow: AirflowDeployment, killed_run: KilledRun) -> None:
    assert airflow.standin is not None
    assert killed_run.state == "success"
    (ti,) = airflow.task_instances(DAG_ID, killed_run.run_id)
    assert ti["try_number"] == 2
    assert airflow.standin.client.task_count() == 1
    assert airflow.xcom(DAG_ID, killed_run.run_id, "create", "task_id") == killed_run.first_task_id
    log = airflow.task_log(DAG_ID, killed_run.run_id, "create")
    assert f"Try 2 reattaches to CAMB text-to-voice task {killed_run.first_task_id}, created by try 1" in log


def test_a_person_clearing_the_task_starts_a_new_camb_task(airflow: AirflowDeployment, killed_run: KilledRun) -> None:
    assert airflow.standin is not None
    before = the_record(airflow, killed_run.run_id)
    airflow.api(
        "POST",
        f"/dags/{DAG_ID}/clearTaskInstances",
        json={"dry_run": False, "dag_run_id": killed_run.run_id, "task_ids": ["create"], "only_failed": False},
    )
    assert the_record(airflow, killed_run.run_id) == before  # clearing leaves the task state store alone
    wait_for(lambda: airflow.task_instances(DAG_ID, killed_run.run_id)[0]["try_number"] == 3, "the rerun")
    assert airflow.wait_for_run(DAG_ID, killed_run.run_id, timeout=240) == "success"
    assert airflow.standin.client.task_count() == 2  # a deliberate rerun pays for a new task
    new_task_id = airflow.xcom(DAG_ID, killed_run.run_id, "create", "task_id")
    assert new_task_id != killed_run.first_task_id
    assert the_record(airflow, killed_run.run_id)["camb_id"] == new_task_id
    log = airflow.task_log(DAG_ID, killed_run.run_id, "create")
    assert f"This task was cleared since try 1 created CAMB text-to-voice task {killed_run.first_task_id}" in log
