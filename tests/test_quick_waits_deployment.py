"""Quick waits in a real deployment: scheduler (LocalExecutor), triggerer, dag-processor and API server of Airflow 3.

The case that lost tasks (apache/airflow#72716): many mapped waits whose CAMB tasks finish about two
seconds after the sensors defer. A resumed attempt could reach RUNNING before the scheduler drained the
stale success of the defer-exit, and the scheduler then failed it. Waits that end in the triggerer (the
default) leave no resumed attempt, so every task of every run must succeed. The old path
(``end_from_trigger=False``) can still lose tasks to that Airflow bug; it is documented, not asserted.

Also: a wait started in the triggerer (``start_from_trigger``) runs no worker at all, for both forms of
the create task's XCom that Airflow 3.3 can render there. Run alone with ``pytest -m deployment``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deployment import AIRFLOW_3

pytestmark = [
    pytest.mark.deployment,
    pytest.mark.skipif(not AIRFLOW_3, reason="the deployment harness runs Airflow 3 components"),
]

VOICES = 40
RUNS = 3

DESCRIPTION = (
    "A warm, calm middle-aged female narrator with a soft British accent, speaking slowly and clearly, "
    "with a gentle and friendly tone suited to bedtime stories."
)

QUICK_DAG_ID = "camb_quick_waits"
QUICK_DAG = f"""
import pendulum
from airflow.sdk import DAG, task
from airflow_provider_camb.operators.text_to_voice import TextToVoiceOperator, TextToVoiceResultOperator
from airflow_provider_camb.sensors.text_to_voice import TextToVoiceStatusSensor

with DAG(
    "{QUICK_DAG_ID}",
    start_date=pendulum.datetime(2024, 1, 1),
    schedule=None,
    max_active_tasks=256,
    params={{"voices": {VOICES}, "destination": "/tmp/unused"}},
) as dag:

    @task
    def texts(params=None) -> list:
        return [f"Voice number {{i}} says hello." for i in range(int(params["voices"]))]

    create = TextToVoiceOperator.partial(task_id="create", voice_description={DESCRIPTION!r}).expand(text=texts())
    wait = TextToVoiceStatusSensor.partial(task_id="wait", poll_interval=1, deferrable=True, timeout=900).expand(
        camb_task_id=create.output
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

    # CAMB tasks finish 4 s after creation: about 2 s after their sensors defer.
    with AirflowDeployment(pending_seconds=4) as deployment:
        deployment.add_dag(f"{QUICK_DAG_ID}.py", QUICK_DAG)
        deployment.add_dag(f"{START_DAG_ID}.py", START_DAG)
        yield deployment


def worker_starts(airflow: Any, dag_id: str, run_id: str, task_id: str) -> Counter[int]:
    """How many times the executor ran each map index of a task in a run (one executor event per worker exit)."""
    pattern = re.compile(
        r"Received executor event with state \w+ for task instance TaskInstanceKey\(dag_id='"
        + re.escape(dag_id)
        + r"', task_id='"
        + re.escape(task_id)
        + r"', run_id='"
        + re.escape(run_id)
        + r"', try_number=\d+, map_index=(-?\d+)\)"
    )
    return Counter(int(m.group(1)) for m in pattern.finditer(airflow.component_log("scheduler")))


def test_quick_waits_succeed_in_every_run_and_each_wait_starts_one_worker(airflow: Any, tmp_path: Path) -> None:
    for number in range(RUNS):
        destination = tmp_path / f"run-{number}"
        run_id = airflow.trigger(QUICK_DAG_ID, {"voices": VOICES, "destination": str(destination)}, via="api")
        assert airflow.wait_for_run(QUICK_DAG_ID, run_id, timeout=900) == "success", airflow.diagnostics()
        states = airflow.task_states(QUICK_DAG_ID, run_id)
        not_successful = {key: state for key, state in states.items() if state != "success"}
        assert not not_successful, f"run {number}: {not_successful}\n{airflow.diagnostics()}"
        waits = {key for key in states if key.startswith("wait[")}
        assert len(waits) == VOICES
        assert len(list(destination.glob("camb_run_*_preview_*.wav"))) >= VOICES
        starts = worker_starts(airflow, QUICK_DAG_ID, run_id, "wait")
        assert starts == Counter(dict.fromkeys(range(VOICES), 1)), f"run {number}: worker starts per wait {starts}"


def test_a_wait_started_in_the_triggerer_runs_no_worker(airflow: Any) -> None:
    run_id = airflow.trigger(START_DAG_ID, via="api")
    assert airflow.wait_for_run(START_DAG_ID, run_id, timeout=300) == "success", airflow.diagnostics()
    run = airflow.xcom(START_DAG_ID, run_id, "wait_output")
    assert isinstance(run, int)
    for task_id in ("wait_output", "wait_jinja"):
        assert airflow.xcom(START_DAG_ID, run_id, task_id) == run
        assert airflow.xcom(START_DAG_ID, run_id, task_id, key="run_id") == run
        assert worker_starts(airflow, START_DAG_ID, run_id, task_id) == Counter(), task_id
    assert worker_starts(airflow, START_DAG_ID, run_id, "create") == Counter({-1: 1})  # the counter does count
