"""The example DAG in a real Airflow 3 deployment: scheduler, triggerer, dag-processor, API server, stand-in.

Once on PostgreSQL and once on SQLite (the example is cheap enough to prove both metadata databases).
Run alone: ``pytest -m deployment tests/test_deployment.py`` (about two minutes).
"""

from __future__ import annotations

import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.deployment import DATABASES, DEPLOYMENT_TESTS, AirflowDeployment

pytestmark = DEPLOYMENT_TESTS

EXAMPLE = Path(__file__).resolve().parent.parent / "example_dags" / "example_camb_text_to_voice.py"
DAG_ID = "example_camb_text_to_voice"
TRIGGER = "airflow_provider_camb.triggers.camb_task.CambTaskTrigger"


@pytest.fixture(scope="module", params=DATABASES)
def deployment(request: pytest.FixtureRequest) -> Iterator[AirflowDeployment]:
    """One deployment per metadata database (PostgreSQL, then SQLite); stopped however the tests end."""
    if "deployment" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("a real deployment takes a minute or two: run with -m deployment")
    # Tasks stay PENDING 12 s: the sensor's first check sees PENDING and defers well clear of apache/airflow#72716.
    airflow = AirflowDeployment(dags=[EXAMPLE], pending_seconds=12, database=request.param)
    try:
        yield airflow.start()
    finally:
        airflow.stop()


def wait_for_claimed_trigger(airflow: AirflowDeployment, run_id: str, timeout: float = 60) -> dict[str, Any]:
    """The sensor's trigger row once a triggerer has claimed it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = airflow.trigger_rows(DAG_ID, run_id, "wait_for_voice")
        if rows and rows[0]["triggerer_id"] is not None:
            return rows[0]
        time.sleep(0.5)
    raise AssertionError(f"no triggerer claimed the trigger: {airflow.trigger_rows(DAG_ID, run_id, 'wait_for_voice')}")


@dataclass
class ExampleRun:
    """One run of the example DAG, and what was seen while it ran."""

    run_id: str
    destination: Path
    deferred: str
    trigger: dict[str, Any]
    state: str


@pytest.fixture(scope="module")
def example_run(deployment: AirflowDeployment, tmp_path_factory: pytest.TempPathFactory) -> ExampleRun:
    """Trigger the example DAG, watch the sensor defer and its trigger get claimed, wait for the end."""
    destination = tmp_path_factory.mktemp("deployment") / "voices"
    run_id = deployment.trigger(DAG_ID, {"destination": str(destination)})
    deferred = deployment.wait_for_task_state(DAG_ID, run_id, "wait_for_voice", "deferred", timeout=120)
    trigger = wait_for_claimed_trigger(deployment, run_id)
    state = deployment.wait_for_run(DAG_ID, run_id, timeout=240)
    return ExampleRun(run_id, destination, deferred, trigger, state)


def test_the_sensor_waits_in_state_deferred_with_our_trigger(example_run: ExampleRun) -> None:
    assert example_run.deferred == "deferred"
    assert example_run.trigger["classpath"] == TRIGGER


def test_the_trigger_ran_in_the_triggerer(deployment: AirflowDeployment, example_run: ExampleRun) -> None:
    triggerer_id = example_run.trigger["triggerer_id"]
    assert triggerer_id in deployment.triggerer_job_ids()
    # The trigger's own log lines, in the file of the triggerer job that claimed it.
    logs = [path for path in deployment.log_files() if path.name.endswith(f".trigger.{triggerer_id}.log")]
    assert logs, [str(path) for path in deployment.log_files()]
    assert "ended with SUCCESS" in "".join(path.read_text() for path in logs)
    assert len(deployment.standin_requests("status")) >= 2  # the sensor's check before deferring, then polls


def test_the_run_succeeds_without_keeping_a_voice(deployment: AirflowDeployment, example_run: ExampleRun) -> None:
    assert example_run.state == "success"
    assert deployment.task_states(DAG_ID, example_run.run_id) == {
        "create_voice": "success",
        "wait_for_voice": "success",
        "download_previews": "success",
    }
    assert deployment.standin_requests("custom_voice") == []


def test_the_previews_are_real_audio_files(deployment: AirflowDeployment, example_run: ExampleRun) -> None:
    downloads = deployment.xcom(DAG_ID, example_run.run_id, "download_previews")
    assert len(downloads) == 2
    for item in downloads:
        path = Path(item["path"].removeprefix("file://"))
        assert path.is_relative_to(example_run.destination)
        assert path.stat().st_size == item["bytes"]
        with wave.open(str(path), "rb") as audio:
            assert audio.getnframes() > 0


def test_the_api_key_is_in_no_log_and_not_in_the_database(
    deployment: AirflowDeployment, example_run: ExampleRun
) -> None:
    assert deployment.standin is not None
    assert deployment.files_containing(deployment.standin.api_key) == []
