"""resume_margin: a wait that resumes on a worker fires no sooner than the margin after it deferred.

Against the stand-in over real HTTP on loopback. A trigger run by a triggerer has a ``trigger_id``; the
tests set one where they stand for a triggerer. The deployment tests
(``tests/test_quick_waits_deployment.py``) show what the margin protects against.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from airflow.triggers.base import TaskSuccessEvent, TriggerEvent

from airflow_provider_camb import _waiting
from airflow_provider_camb.exceptions import CambInputError
from airflow_provider_camb.operators.text_to_voice import TextToVoiceOperator
from airflow_provider_camb.sensors.camb_task import CambTaskSensor
from airflow_provider_camb.triggers._resume_margin import DEFAULT_RESUME_MARGIN, resume_hold
from airflow_provider_camb.triggers.camb_task import CambTaskTrigger
from airflow_provider_camb.triggers.text_to_voice import TextToVoiceTrigger
from tests.shared import DESCRIPTION, text_to_voice_trigger

HOLDING = "Resuming the Airflow task on a worker in"


def in_a_triggerer(trigger: CambTaskTrigger) -> CambTaskTrigger:
    trigger.trigger_id = 1  # what Airflow's triggerer sets before it runs a trigger
    return trigger


def first_event(trigger: CambTaskTrigger) -> tuple[TriggerEvent, float]:
    """The trigger's event and the epoch time it left."""

    async def run() -> tuple[TriggerEvent, float]:
        async with asyncio.timeout(60):
            async for event in trigger.run():
                return event, time.time()
        raise AssertionError("the trigger yielded nothing")

    return asyncio.run(run())


def logged(capfd: pytest.CaptureFixture[str]) -> str:
    out, err = capfd.readouterr()
    return out + err


# --- when to fire -----------------------------------------------------------------------------------


def test_the_hold_counts_from_the_deferral():
    assert resume_hold(deferred_at=100.0, resume_margin=30.0, started=105.0, now=110.0) == 20.0
    assert resume_hold(deferred_at=100.0, resume_margin=30.0, started=105.0, now=140.0) == 0.0


def test_a_margin_of_zero_never_holds():
    assert resume_hold(deferred_at=100.0, resume_margin=0.0, started=100.0, now=100.0) == 0.0


def test_a_row_written_before_the_margin_holds_the_default_from_when_it_started_running():
    # No deferral time stored: the trigger's own start is later than the deferral, so the hold is never shorter.
    hold = resume_hold(deferred_at=None, resume_margin=None, started=200.0, now=201.0)
    assert hold == DEFAULT_RESUME_MARGIN - 1.0


# --- the trigger --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["ERROR", "SUCCESS"])  # a SUCCESS without end_from_trigger resumes too
def test_an_event_that_resumes_on_a_worker_leaves_no_sooner_than_the_margin(camb_connection, capfd, status):
    task_id = camb_connection.add_task(status=status)
    deferred_at = time.time()
    trigger = in_a_triggerer(
        text_to_voice_trigger(task_id, poll_interval=0.1, deferred_at=deferred_at, resume_margin=1.5)
    )
    event, left = first_event(trigger)
    assert event.payload["status"] == status
    assert left >= deferred_at + 1.5
    assert HOLDING in logged(capfd)


def test_a_wait_that_ends_in_the_triggerer_fires_at_once(camb_connection, capfd):
    task_id = camb_connection.add_task(status="SUCCESS")
    trigger = in_a_triggerer(
        text_to_voice_trigger(
            task_id, poll_interval=0.1, end_from_trigger=True, deferred_at=time.time(), resume_margin=3600
        )
    )
    event, _ = first_event(trigger)
    assert isinstance(event, TaskSuccessEvent)
    assert HOLDING not in logged(capfd)


def test_without_a_triggerer_nothing_is_held(camb_connection, capfd):
    # dag.test() runs triggers inline: no scheduler, no stale exit to wait out.
    task_id = camb_connection.add_task(status="ERROR")
    trigger = text_to_voice_trigger(
        task_id,
        poll_interval=0.1,
        deferred_at=time.time(),
        resume_margin=3600,
    )
    event, _ = first_event(trigger)
    assert event.payload["status"] == "ERROR"
    assert HOLDING not in logged(capfd)


def test_the_deferral_time_and_margin_survive_the_trigger_row():
    for trigger in (
        CambTaskTrigger("t-1", kind="tts", deferred_at=1234.5, resume_margin=12.0),
        TextToVoiceTrigger("t-1", deferred_at=1234.5, resume_margin=12.0),
    ):
        classpath, kwargs = trigger.serialize()
        stored = json.loads(json.dumps(kwargs))  # the row holds plain data
        assert (stored["deferred_at"], stored["resume_margin"]) == (1234.5, 12.0)
        assert type(trigger)(**stored).serialize() == (classpath, kwargs)


# --- the operators ------------------------------------------------------------------------------------


def deferral_of(waiter: Any) -> CambTaskTrigger:
    return _waiting.trigger_for(waiter, "t-1")


def test_a_deferring_sensor_stores_when_it_deferred_and_its_margin():
    before = time.time()
    trigger = deferral_of(
        CambTaskSensor(task_id="w", kind="tts", camb_task_id="t-1", resume_margin=timedelta(minutes=1))
    )
    assert trigger.resume_margin == 60.0
    assert trigger.deferred_at is not None and before <= trigger.deferred_at <= time.time()


def test_a_waiting_create_operator_takes_the_margin_too():
    operator = TextToVoiceOperator(
        task_id="c", text="Hello", voice_description=DESCRIPTION, wait_for_completion=True, resume_margin=5
    )
    assert deferral_of(operator).resume_margin == 5.0
    default = TextToVoiceOperator(task_id="d", text="Hello", voice_description=DESCRIPTION, wait_for_completion=True)
    assert deferral_of(default).resume_margin == DEFAULT_RESUME_MARGIN


@pytest.mark.parametrize("margin", [-1, "30", True, None])
def test_a_bad_margin_is_refused_when_the_dag_is_parsed(margin):
    with pytest.raises(CambInputError, match="resume_margin must be zero or a positive number of seconds"):
        CambTaskSensor(task_id="w", kind="tts", camb_task_id="t-1", resume_margin=margin)


def test_a_wait_started_in_the_triggerer_has_no_deferral_to_wait_out():
    sensor = CambTaskSensor(task_id="w", kind="tts", camb_task_id="t-1", start_from_trigger=True)
    assert sensor.start_trigger_args.trigger_kwargs is not None
    assert sensor.start_trigger_args.trigger_kwargs["resume_margin"] == 0.0
