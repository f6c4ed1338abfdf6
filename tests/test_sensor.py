"""TextToVoiceStatusSensor in real DAG runs (``dag.test()``) against the stand-in, in all three modes."""

from __future__ import annotations

import itertools

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout

from airflow_provider_camb.api import CambTaskStatus
from airflow_provider_camb.exceptions import CambResponseError, CambWaitTimeoutError
from airflow_provider_camb.kinds import TEXT_TO_VOICE

_ids = itertools.count()
STARTUP = 8.0  # dag.test() needs ~5 s before a task runs; tasks meant to be seen PENDING outlast that

DAG_SOURCE = """
import pendulum
from datetime import timedelta
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_camb.sensors.text_to_voice import TextToVoiceStatusSensor

with DAG("{dag_id}", start_date=pendulum.datetime(2024, 1, 1), schedule=None) as dag:
    TextToVoiceStatusSensor(
        task_id="wait",
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
    dag_id = f"sensor_test_{next(_ids)}"
    source = DAG_SOURCE.format(dag_id=dag_id, camb_task_id=camb_task_id, options=options, retries=retries)
    return run_dag.run(source)


@pytest.mark.parametrize("mode", MODES)
def test_success_pushes_the_run_id_in_every_mode(run_dag, camb_connection, mode):
    task_id = camb_connection.add_task(pending_seconds=STARTUP)
    result = run_sensor(run_dag, task_id, MODES[mode])
    assert result.task_states == {"wait": "success"}
    run_id = result.xcom("wait")
    assert isinstance(run_id, int)
    assert result.xcom("wait", "run_id") == run_id
    assert camb_connection.request_count("status") >= 2  # it saw PENDING first


def test_a_task_already_finished_is_not_deferred(run_dag, camb_connection):
    task_id = camb_connection.add_task(status="SUCCESS")
    result = run_sensor(run_dag, task_id, MODES["deferrable"])
    assert result.task_states == {"wait": "success"}
    assert camb_connection.request_count("status") == 1  # the one check before deferring; no trigger ran
    assert result.xcom("wait") == result.xcom("wait", "run_id")


@pytest.mark.parametrize("mode", ["deferrable", "poke"])
@pytest.mark.parametrize(
    ("outcome", "advice"), [("ERROR", "Review the inputs"), ("TIMEOUT", "contact CAMB.AI support")]
)
def test_error_and_timeout_fail_with_the_reason_and_are_retried(run_dag, camb_connection, capfd, mode, outcome, advice):
    task_id = camb_connection.add_task(pending_seconds=STARTUP, outcome=outcome, exception_reason="PROCESSING_ERROR")
    result = run_sensor(run_dag, task_id, MODES[mode], retries=1)
    assert result.task_states == {"wait": "failed"}
    assert result.tries["wait"] == 2  # Airflow's retries apply: a new attempt may help
    output = capfd.readouterr()
    text = output.out + output.err
    assert f"CAMB text-to-voice task '{task_id}' ended with status {outcome}" in text
    assert "PROCESSING_ERROR" in text and advice in text


def test_payment_required_fails_without_retries(run_dag, camb_connection, capfd):
    task_id = camb_connection.add_task(pending_seconds=STARTUP, outcome="PAYMENT_REQUIRED")
    result = run_sensor(run_dag, task_id, MODES["deferrable"], retries=2)
    assert result.task_states == {"wait": "failed"}
    assert result.tries["wait"] == 1
    output = capfd.readouterr()
    assert "Add credits" in output.out + output.err


@pytest.mark.parametrize("mode", ["deferrable", "poke"])
def test_our_deadline_is_airflows_sensor_timeout(run_dag, camb_connection, capfd, mode):
    task_id = camb_connection.add_task(pending_seconds=120)
    result = run_sensor(run_dag, task_id, MODES[mode] + " timeout=2,", retries=1)
    assert result.task_states == {"wait": "failed"}
    assert result.tries["wait"] == 1  # a sensor timeout fails without retries
    output = capfd.readouterr()
    assert "CambWaitTimeoutError" in output.out + output.err
    assert f"CAMB text-to-voice task '{task_id}' did not finish before the deadline" in output.out + output.err
    assert issubclass(CambWaitTimeoutError, AirflowSensorTimeout)


@pytest.mark.parametrize("mode", ["deferrable", "poke"])
def test_soft_fail_skips_on_timeout_and_on_failure(run_dag, camb_connection, mode):
    slow = camb_connection.add_task(pending_seconds=120)
    assert run_sensor(run_dag, slow, MODES[mode] + " timeout=2, soft_fail=True,").task_states == {"wait": "skipped"}
    failing = camb_connection.add_task(pending_seconds=STARTUP, outcome="ERROR")
    assert run_sensor(run_dag, failing, MODES[mode] + " soft_fail=True,").task_states == {"wait": "skipped"}


def test_unknown_camb_task_fails_naming_it(run_dag, camb_connection, capfd):
    result = run_sensor(run_dag, "no-such-task", MODES["deferrable"])
    assert result.task_states == {"wait": "failed"}
    output = capfd.readouterr()
    assert "no-such-task" in output.out + output.err


def test_success_without_a_run_id_is_an_error_not_a_none():
    with pytest.raises(CambResponseError, match="no run_id"):
        CambTaskStatus(task_id="t", status="SUCCESS", run_id=None, kind=TEXT_TO_VOICE).run_id_or_raise()
