"""CambTaskSensor in real DAG runs (``dag.test()``) against the stand-in, in all three modes.

It waits for text-to-voice tasks; the 0.1.0 ``TextToVoiceStatusSensor`` is covered in test_deprecated.
"""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout

from airflow_provider_camb.api import CambTaskStatus
from airflow_provider_camb.exceptions import CambResponseError, CambWaitTimeoutError
from airflow_provider_camb.kinds import TEXT_TO_VOICE
from tests.shared import assert_deferred, ids, logged, pending_after_first_check, run_id_of, waited_in_the_triggerer

DAG_SOURCE = """
import pendulum
from datetime import timedelta
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_camb.sensors.camb_task import CambTaskSensor

with DAG("{dag_id}", start_date=pendulum.datetime(2024, 1, 1), schedule=None) as dag:
    CambTaskSensor(
        task_id="wait",
        kind="text-to-voice",
        camb_task_id="{{{{ params.camb_task_id }}}}",
        params={{"camb_task_id": "{camb_task_id}"}},
        poll_interval=0.5,
        retries={retries},
        retry_delay=timedelta(seconds=0),
        {options}
    )
"""

MODES = {
    "deferrable": "deferrable=True,",
    "poke": "deferrable=False, mode='poke',",
    "reschedule": "deferrable=False, mode='reschedule',",
}


def run_sensor(run_dag, camb_task_id: str, options: str, retries: int = 0):
    dag_id = f"sensor_test_{next(ids)}"
    source = DAG_SOURCE.format(dag_id=dag_id, camb_task_id=camb_task_id, options=options, retries=retries)
    return run_dag.run(source)


@pytest.fixture
def camb_connection(camb_connection):
    """Tasks stay PENDING for 1 s after their first status read: every sensor sees PENDING first."""
    pending_after_first_check(camb_connection)
    return camb_connection


@pytest.mark.parametrize("mode", MODES)
def test_success_pushes_the_run_id_in_every_mode(run_dag, camb_connection, capfd, mode):
    task_id = camb_connection.add_task()
    result = run_sensor(run_dag, task_id, MODES[mode])
    assert result.task_states == {"wait": "success"}
    run_id = result.xcom("wait")
    assert result.xcom("wait", "run_id") == run_id == run_id_of(task_id)
    assert camb_connection.request_count("status") >= 3  # it saw PENDING first (and the check above)
    assert waited_in_the_triggerer(logged(capfd), task_id) is (mode == "deferrable")


def test_a_task_already_finished_is_not_deferred(run_dag, camb_connection, capfd):
    task_id = camb_connection.add_task(status="SUCCESS")
    result = run_sensor(run_dag, task_id, MODES["deferrable"])
    assert result.task_states == {"wait": "success"}
    assert camb_connection.request_count("status") == 1  # the one check before deferring; no trigger ran
    assert not waited_in_the_triggerer(logged(capfd), task_id)
    assert result.xcom("wait") == result.xcom("wait", "run_id") == run_id_of(task_id)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("outcome", "advice"), [("ERROR", "Review the inputs"), ("TIMEOUT", "contact CAMB.AI support")]
)
def test_error_and_timeout_fail_with_the_reason_and_are_retried(run_dag, camb_connection, capfd, mode, outcome, advice):
    task_id = camb_connection.add_task(outcome=outcome, exception_reason="PROCESSING_ERROR")
    result = run_sensor(run_dag, task_id, MODES[mode], retries=1)
    assert result.task_states == {"wait": "failed"}
    assert result.tries["wait"] == 2  # Airflow's retries apply: a new attempt may help
    text = logged(capfd)
    assert f"CAMB text-to-voice task '{task_id}' ended with status {outcome}" in text
    assert "PROCESSING_ERROR" in text and advice in text
    if mode == "deferrable":
        assert_deferred(text, task_id, outcome)


@pytest.mark.parametrize("mode", MODES)
def test_payment_required_fails_without_retries(run_dag, camb_connection, capfd, mode):
    task_id = camb_connection.add_task(outcome="PAYMENT_REQUIRED")
    result = run_sensor(run_dag, task_id, MODES[mode], retries=2)
    assert result.task_states == {"wait": "failed"}
    assert result.tries["wait"] == 1
    text = logged(capfd)
    assert "Add credits" in text
    assert waited_in_the_triggerer(text, task_id, "PAYMENT_REQUIRED") is (mode == "deferrable")


@pytest.mark.parametrize("mode", MODES)
def test_our_deadline_is_airflows_sensor_timeout(run_dag, camb_connection, capfd, mode):
    task_id = camb_connection.add_task(status="PENDING")
    result = run_sensor(run_dag, task_id, MODES[mode] + " timeout=2,", retries=1)
    assert result.task_states == {"wait": "failed"}
    assert result.tries["wait"] == 1  # a sensor timeout fails without retries
    text = logged(capfd)
    assert "CambWaitTimeoutError" in text
    assert f"CAMB text-to-voice task '{task_id}' did not finish before the deadline" in text
    assert issubclass(CambWaitTimeoutError, AirflowSensorTimeout)


@pytest.mark.parametrize("mode", MODES)
def test_soft_fail_skips_on_timeout_and_on_failure(run_dag, camb_connection, mode):
    slow = camb_connection.add_task(status="PENDING")
    assert run_sensor(run_dag, slow, MODES[mode] + " timeout=2, soft_fail=True,").task_states == {"wait": "skipped"}
    failing = camb_connection.add_task(outcome="ERROR")
    assert run_sensor(run_dag, failing, MODES[mode] + " soft_fail=True,").task_states == {"wait": "skipped"}


def test_unknown_camb_task_fails_naming_it(run_dag, camb_connection, capfd):
    result = run_sensor(run_dag, "no-such-task", MODES["deferrable"])
    assert result.task_states == {"wait": "failed"}
    assert "CAMB found nothing while reading the status of CAMB text-to-voice task 'no-such-task'" in logged(capfd)
    assert camb_connection.request_count("status") == 1  # permanent: not retried


def test_success_without_a_run_id_is_an_error_not_a_none():
    with pytest.raises(CambResponseError, match="no run_id"):
        CambTaskStatus(task_id="t", status="SUCCESS", run_id=None, kind=TEXT_TO_VOICE).run_id_or_raise()
