"""Quick waits in a real deployment: scheduler (LocalExecutor), triggerer, dag-processor and API server of Airflow 3.

The case that lost tasks (apache/airflow#72716): many mapped waits whose CAMB tasks finish one or two
seconds after the sensors defer (each is let finish as soon as its sensor is seen deferred). A resumed
attempt could reach RUNNING before the scheduler drained the stale success of the defer-exit, and the
scheduler then failed it. Waits that end in the triggerer (the default) leave no resumed attempt, so every
task of every run must succeed. The old path
(``end_from_trigger=False``) can still lose tasks to that Airflow bug; it is documented, not asserted.

Also: a wait started in the triggerer (``start_from_trigger``) runs no worker at all, for both forms of
the create task's XCom that Airflow 3.3 can render there. Run alone with ``pytest -m deployment``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.deployment import AIRFLOW_3
from tests.shared import DESCRIPTION

pytestmark = [
    pytest.mark.deployment,
    pytest.mark.skipif(not AIRFLOW_3, reason="the deployment harness runs Airflow 3 components"),
]

VOICES = 40
RUNS = 3


QUICK_DAG_ID = "camb_quick_waits"
QUICK_DAG = f"""
import pendulum
from airflow.sdk import DAG, task
from airflow_provider_camb.operators.text_to_voice import TextToVoiceResultOperator
from airflow_provider_camb.sensors.text_to_voice import TextToVoiceStatusSensor

with DAG(
    "{QUICK_DAG_ID}",
    start_date=pendulum.datetime(2024, 1, 1),
    schedule=None,
    max_active_tasks=256,
    params={{"camb_task_ids": [], "destination": "/tmp/unused"}},
) as dag:

    @task
    def camb_task_ids(params=None) -> list:
        return list(params["camb_task_ids"])

    wait = TextToVoiceStatusSensor.partial(task_id="wait", poll_interval=1, deferrable=True, timeout=900).expand(
        camb_task_id=camb_task_ids()
    )
    TextToVoiceResultOperator.partial(task_id="download", destination="{{{{ params.destination }}}}").expand(
        run_id=wait.output
    )
"""

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
def airflow() -> Iterator[Any]:
    from tests.deployment import AirflowDeployment

    with AirflowDeployment(pending_seconds=4) as deployment:
        deployment.add_dag(f"{QUICK_DAG_ID}.py", QUICK_DAG)
        deployment.add_dag(f"{START_DAG_ID}.py", START_DAG)
        yield deployment


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


def worker_runs(airflow: Any, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> int:
    """How many times a worker ran the task's code: one "startup parse complete" per run in its log.

    A worker that finds no DAG at start-up has Airflow reschedule the task without running it (seen on
    a loaded machine); such starts run none of our code and are not counted.
    """
    return airflow.task_log(dag_id, run_id, task_id, map_index).count("Worker startup parse complete")


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
        runs = {i: worker_runs(airflow, QUICK_DAG_ID, run_id, "wait", i) for i in range(VOICES)}
        resumed = sorted(i for i, count in runs.items() if count != 1)
        assert not resumed, (
            f"run {number}: waits not run on a worker exactly once: {resumed}\n"
            + airflow.task_log(QUICK_DAG_ID, run_id, "wait", resumed[0])[-6000:]
        )
        ended_here = [
            i
            for i in range(VOICES)
            if "Ending the Airflow task here" in airflow.task_log(QUICK_DAG_ID, run_id, "wait", i)
        ]
        assert ended_here == list(range(VOICES))  # every wait ended in the triggerer


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
        assert worker_runs(airflow, START_DAG_ID, run_id, task_id) == 0, task_id
        assert "Ending the Airflow task here" in airflow.task_log(START_DAG_ID, run_id, task_id)
    assert worker_runs(airflow, START_DAG_ID, run_id, "create") == 1  # the count does count
