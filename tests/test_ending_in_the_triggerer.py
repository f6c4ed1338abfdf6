"""Waits that end (and start) in the triggerer: the events, the rows of 0.1.0, and the checks at parse time.

Real HTTP to the stand-in for the triggers and the dag.test() runs; the parse-time checks need no server.
A real scheduler and triggerer are exercised in ``tests/test_quick_waits_deployment.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import warnings
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.triggers.base import TaskSuccessEvent

from airflow_provider_camb.events import decode_event, error_of, status_of
from airflow_provider_camb.exceptions import (
    CambAuthError,
    CambInputError,
    CambNotFoundError,
    CambPaymentRequiredError,
    CambTaskFailedError,
    CambWaitTimeoutError,
)
from airflow_provider_camb.sensors.camb_task import CambTaskSensor, _triggerer_renders_templates
from airflow_provider_camb.triggers.camb_task import CambTaskTrigger
from tests.airflow_harness import AIRFLOW_3
from tests.shared import assert_deferred, context, ids, logged, pending_after_first_check, run_id_of, wait_until


def first_event(trigger: CambTaskTrigger, limit: float = 20) -> Any:
    async def run() -> list[Any]:
        async with asyncio.timeout(limit):
            return [event async for event in trigger.run()]

    events = asyncio.run(run())
    assert len(events) == 1, events
    return events[0]


def ending_in_the_triggerer(camb_task_id: str, **kwargs: Any) -> CambTaskTrigger:
    return CambTaskTrigger(
        camb_task_id,
        kind="text-to-voice",
        poll_interval=0.1,
        wait_before_first_poll=False,
        end_from_trigger=True,
        **kwargs,
    )


# --- the trigger -----------------------------------------------------------------------------------


def test_success_ends_the_task_in_the_triggerer_with_the_run_id_as_xcoms(camb_connection):
    task_id = camb_connection.add_task(pending_seconds=0.3)
    event = first_event(
        CambTaskTrigger(
            task_id, kind="text-to-voice", poll_interval=0.1, wait_before_first_poll=False, end_from_trigger=True
        )
    )
    assert isinstance(event, TaskSuccessEvent)
    run_id = run_id_of(task_id)
    assert event.xcoms == {"return_value": run_id, "run_id": run_id}


@pytest.mark.parametrize("outcome", ["ERROR", "TIMEOUT", "PAYMENT_REQUIRED"])
def test_every_other_outcome_resumes_on_a_worker_even_when_ending_in_the_triggerer(camb_connection, outcome):
    task_id = camb_connection.add_task(pending_seconds=0.3, outcome=outcome)
    event = first_event(
        CambTaskTrigger(
            task_id, kind="text-to-voice", poll_interval=0.1, wait_before_first_poll=False, end_from_trigger=True
        )
    )
    assert not isinstance(event, TaskSuccessEvent)
    assert event.payload["status"] == outcome and event.payload["task_id"] == task_id


def test_a_deadline_resumes_on_a_worker_even_when_ending_in_the_triggerer(camb_connection):
    task_id = camb_connection.add_task(pending_seconds=60)
    trigger = CambTaskTrigger(
        task_id, kind="text-to-voice", poll_interval=0.1, wait_before_first_poll=False, end_from_trigger=True, timeout=1
    )
    assert first_event(trigger).payload["outcome"] == "deadline"


#: Every way a wait ends: the CAMB outcome (or fault), the event's outcome and CAMB status, and the error a
#: worker raises on it.
OUTCOMES = {
    "success": ({}, "finished", "SUCCESS", None),
    "error": ({"outcome": "ERROR"}, "finished", "ERROR", CambTaskFailedError),
    "camb timeout": ({"outcome": "TIMEOUT"}, "finished", "TIMEOUT", CambTaskFailedError),
    "payment required": ({"outcome": "PAYMENT_REQUIRED"}, "finished", "PAYMENT_REQUIRED", CambPaymentRequiredError),
    "our deadline": ({"status": "PENDING"}, "deadline", None, CambWaitTimeoutError),
    "unknown task": ({"task_id": "gone"}, "error", None, CambNotFoundError),
    "revoked key": ({"fault": "unauthorized", "times": 2}, "error", None, CambAuthError),  # also after a re-read
}


@pytest.mark.parametrize(("setup", "outcome", "status", "error"), OUTCOMES.values(), ids=OUTCOMES)
def test_end_from_trigger_false_resumes_on_a_worker_for_every_outcome(camb_connection, setup, outcome, status, error):
    setup = dict(setup)
    fault, times = setup.pop("fault", None), setup.pop("times", 1)
    if fault:
        camb_connection.inject(fault, endpoint="status", times=times)
    task_id = "never-created" if setup.pop("task_id", None) else camb_connection.add_task(pending_seconds=0.2, **setup)
    trigger = CambTaskTrigger(task_id, kind="text-to-voice", poll_interval=0.1, wait_before_first_poll=False, timeout=1)
    assert trigger.end_from_trigger is False  # the trigger's default, as rows written by 0.1.0 have it
    event = first_event(trigger)
    assert not isinstance(event, TaskSuccessEvent)  # a worker resumes the task, whatever the outcome
    assert (event.payload["outcome"], event.payload.get("status"), event.payload["task_id"]) == (
        outcome,
        status,
        task_id,
    )
    sensor = CambTaskSensor(task_id="wait", kind="text-to-voice", camb_task_id=task_id, end_from_trigger=False)
    ctx = context()
    if error is None:
        assert sensor.execute_complete(ctx, event.payload) == run_id_of(task_id)
        assert ctx["ti"].xcoms == {"run_id": run_id_of(task_id)}
    else:
        with pytest.raises(error):
            sensor.execute_complete(ctx, event.payload)


def test_a_wait_started_in_the_triggerer_ends_at_its_timeout_as_a_sensor_timeout(camb_connection):
    task_id = camb_connection.add_task(kind="tts", status="PENDING")
    sensor = CambTaskSensor(task_id="wait", kind="tts", camb_task_id=task_id, timeout=1, start_from_trigger=True)
    start = sensor.start_trigger_args
    assert start.timeout == timedelta(seconds=1)  # Airflow's own deadline, kept by the scheduler wherever it runs
    assert start.trigger_kwargs["timeout"] == 1 and "deadline" not in start.trigger_kwargs
    event = first_event(CambTaskTrigger(**start.trigger_kwargs))  # no worker computed a deadline: its own timeout
    assert event.payload["outcome"] == "deadline"
    with pytest.raises(CambWaitTimeoutError, match=f"task '{task_id}' did not finish before the deadline"):
        sensor.execute_complete(context(), event.payload)


def handed_airflows_timeout(classpath: str, kwargs: dict[str, Any], trigger_timeout: datetime) -> CambTaskTrigger:
    """The row's trigger, handed the task instance's ``trigger_timeout`` as this Airflow's triggerer hands it."""
    module, _, name = classpath.rpartition(".")
    trigger: CambTaskTrigger = getattr(importlib.import_module(module), name)(**kwargs)
    if AIRFLOW_3:  # TriggerRunner.create_triggers: timeout_after, from the task instance's row
        trigger.timeout_after = trigger_timeout
    else:  # 2.11 hands over the task instance row itself, whose column is naive UTC
        trigger.task_instance = SimpleNamespace(task_id="wait", trigger_timeout=trigger_timeout.replace(tzinfo=None))
    return trigger


async def run_until_it_polled_then_die(trigger: CambTaskTrigger, polled: Any) -> None:
    """Run the trigger until ``polled()``, then cancel it, as a killed triggerer's triggers end."""
    run = trigger.run()
    waiting = asyncio.ensure_future(anext(run))
    async with asyncio.timeout(30):
        while not polled():
            assert not waiting.done(), waiting  # still waiting when it dies
            await asyncio.sleep(0.02)
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    await run.aclose()


def test_a_wait_started_in_the_triggerer_keeps_its_deadline_when_its_trigger_moves(camb_connection, airflow_home):
    """One row run by two triggerers in turn: the second, started once the deadline passed, has no time left.

    The deadline is the task instance's ``trigger_timeout``, set once when Airflow deferred the task; the
    row (unchanged from earlier releases) holds only the relative ``timeout``.
    """
    from airflow.models.trigger import Trigger

    task_id = camb_connection.add_task(kind="tts", status="PENDING")
    sensor = CambTaskSensor(
        task_id="wait", kind="tts", camb_task_id=task_id, poll_interval=0.1, timeout=2, start_from_trigger=True
    )
    start = sensor.start_trigger_args
    row = Trigger(classpath=start.trigger_cls, kwargs=start.trigger_kwargs)
    stored = row.kwargs if not AIRFLOW_3 else _decoded_kwargs(row)
    assert stored == start.trigger_kwargs and "deadline" not in stored  # nothing but the relative timeout
    trigger_timeout = datetime.now(timezone.utc) + start.timeout  # as TaskInstance.defer_task sets it

    def status_reads() -> int:
        return len(camb_connection.requests("status"))

    first = handed_airflows_timeout(row.classpath, stored, trigger_timeout)
    asyncio.run(run_until_it_polled_then_die(first, status_reads))
    reads_before_the_move = status_reads()
    wait_until(lambda: datetime.now(timezone.utc) > trigger_timeout, "the task's deadline to pass")

    event = first_event(handed_airflows_timeout(row.classpath, stored, trigger_timeout))
    assert (event.payload["outcome"], event.payload["polls"]) == ("deadline", 0)
    assert status_reads() == reads_before_the_move  # the second triggerer never asked CAMB
    with pytest.raises(CambWaitTimeoutError, match=f"task '{task_id}' did not finish before the deadline"):
        sensor.execute_complete(context(), event.payload)


def test_an_unknown_kind_in_a_row_ends_the_wait_with_an_error_not_a_broken_triggerer(camb_connection):
    event = first_event(CambTaskTrigger("t", kind="no-such-kind", poll_interval=0.1, wait_before_first_poll=False))
    assert event.payload["outcome"] == "error"
    with pytest.raises(CambInputError, match="Unknown CAMB task kind 'no-such-kind'"):
        raise error_of(decode_event(event.payload))


def test_a_trigger_row_written_by_0_1_0_loads_and_finishes(camb_connection, airflow_home):
    """The classpath and kwargs exactly as 0.1.0 stored them, through Airflow's own row encryption."""
    from airflow.models.trigger import Trigger

    task_id = camb_connection.add_task(pending_seconds=0.3)
    classpath = "airflow_provider_camb.triggers.text_to_voice.TextToVoiceTrigger"
    kwargs_0_1_0 = {
        "camb_task_id": task_id,
        "camb_conn_id": "camb_default",
        "poll_interval": 0.1,
        "deadline": None,
        "wait_before_first_poll": False,
    }
    row = Trigger(classpath=classpath, kwargs=kwargs_0_1_0)
    loaded = row.kwargs if not AIRFLOW_3 else _decoded_kwargs(row)
    module, _, name = row.classpath.rpartition(".")
    trigger = getattr(importlib.import_module(module), name)(**loaded)
    event = first_event(trigger)
    assert not isinstance(event, TaskSuccessEvent)  # 0.1.0's task waits in execute_complete: it must resume there
    payload = event.payload
    assert payload["status"] == "SUCCESS" and payload["run_id"] == run_id_of(task_id)
    status = status_of(decode_event(payload))  # events as 0.1.0 wrote them: tests/test_events.py
    assert status.kind.name == "text-to-voice" and status.run_id_or_raise() == payload["run_id"]


def _decoded_kwargs(row: Any) -> dict[str, Any]:
    from airflow.models.trigger import Trigger
    from airflow.serialization.decoders import smart_decode_trigger_kwargs

    return {k: smart_decode_trigger_kwargs(v) for k, v in Trigger._decrypt_kwargs(row.encrypted_kwargs).items()}


# --- dag.test() ------------------------------------------------------------------------------------

SENSOR_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_camb.sensors.camb_task import CambTaskSensor

with DAG("{dag_id}", start_date=pendulum.datetime(2024, 1, 1), schedule=None) as dag:
    CambTaskSensor(
        task_id="wait", kind="text-to-voice", camb_task_id="{camb_task_id}", poll_interval=0.5, deferrable=True,
        {options}
    )
"""


@pytest.mark.parametrize("end_from_trigger", [True, False])
def test_a_deferred_sensor_returns_the_run_id_either_way(run_dag, camb_connection, capfd, end_from_trigger):
    pending_after_first_check(camb_connection)  # the sensor's first check sees PENDING: it defers
    task_id = camb_connection.add_task()
    source = SENSOR_DAG.format(
        dag_id=f"end_in_triggerer_{next(ids)}", camb_task_id=task_id, options=f"end_from_trigger={end_from_trigger},"
    )
    result = run_dag.run(source)
    run_id = run_id_of(task_id)
    assert result.task_states == {"wait": "success"}
    assert result.xcom("wait") == run_id and result.xcom("wait", "run_id") == run_id
    logs = logged(capfd)
    assert_deferred(logs, task_id)
    assert (f"Ending the Airflow task here with run id {run_id}" in logs) is end_from_trigger


# --- start_from_trigger: what is refused, accepted or changed when the DAG is parsed ----------------


def parse(source: str) -> Any:
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # noqa: S102  # DAG source written by the test itself
    return namespace


DAG_HEAD = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_camb.operators.text_to_voice import TextToVoiceOperator
from airflow_provider_camb.sensors.camb_task import CambTaskSensor

DESCRIPTION = "a calm and friendly narrator voice with a soft accent, speaking slowly and clearly " * 3
with DAG("parsed", start_date=pendulum.datetime(2024, 1, 1), schedule=None) as dag:
    create = TextToVoiceOperator(task_id="create", text="Hello", voice_description=DESCRIPTION)
"""


def test_an_unknown_kind_is_refused_when_the_dag_is_parsed():
    with pytest.raises(CambInputError, match=r"Unknown CAMB task kind 'voice'.*text-to-voice, tts"):
        parse(DAG_HEAD + "    CambTaskSensor(task_id='wait', kind='voice', camb_task_id='t')\n")


def test_a_mapped_wait_cannot_start_in_the_triggerer_and_the_error_shows_what_works():
    source = DAG_HEAD + (
        "    CambTaskSensor.partial(task_id='wait', kind='text-to-voice', start_from_trigger=True)"
        ".expand(camb_task_id=['a', 'b'])\n"
    )
    with pytest.raises(CambInputError, match=r"Drop start_from_trigger.*\.expand\(camb_task_id=create\.output\)"):
        parse(source)


def test_a_mapped_wait_without_start_from_trigger_is_accepted():
    source = DAG_HEAD + (
        "    CambTaskSensor.partial(task_id='wait', kind='text-to-voice').expand(camb_task_id=['a', 'b'])\n"
    )
    dag = parse(source)["dag"]
    wait = dag.get_task("wait")
    assert type(wait).__name__ == "MappedOperator"
    assert wait.partial_kwargs.get("start_from_trigger", False) is False
    assert wait.expand_input.value == {"camb_task_id": ["a", "b"]}


def test_a_plain_task_id_starts_in_the_triggerer_as_it_is():
    sensor = parse(
        DAG_HEAD + "    s = CambTaskSensor(task_id='w', kind='tts', camb_task_id='t-1', start_from_trigger=True)\n"
    )["s"]
    assert sensor.start_from_trigger is True
    kwargs = sensor.start_trigger_args.trigger_kwargs
    assert kwargs["camb_task_id"] == "t-1" and kwargs["kind"] == "tts" and kwargs["end_from_trigger"] is True
    assert sensor.start_trigger_args.trigger_cls == "airflow_provider_camb.triggers.camb_task.CambTaskTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs  # stored in the trigger row: plain data only ...
    assert kwargs == {
        "kind": "tts",
        "camb_task_id": "t-1",
        "camb_conn_id": "camb_default",  # ... the connection by name, never its key or URL
        "poll_interval": 5.0,
        "wait_before_first_poll": False,
        "end_from_trigger": True,
        "timeout": 86400.0,
        "resume_margin": 0.0,  # no worker deferred it: nothing to wait out
    }
    CambTaskTrigger(**kwargs)  # and the trigger accepts exactly these kwargs
    assert type(sensor).start_trigger_args.trigger_kwargs is None  # the class attribute is not mutated


RENDERS = _triggerer_renders_templates()
needs_3_3 = pytest.mark.skipif(not RENDERS, reason="the triggerer renders templates from Airflow 3.3")
before_3_3 = pytest.mark.skipif(RENDERS, reason="Airflow 3.3+ renders templates in the triggerer")
FROM_CREATE = (
    "    s = CambTaskSensor(task_id='w', kind='text-to-voice', camb_task_id=create.output, start_from_trigger=True)\n"
)


@needs_3_3
def test_the_create_tasks_xcom_is_pulled_for_one_map_index_in_the_triggerer():
    sensor = parse(DAG_HEAD + FROM_CREATE)["s"]
    assert sensor.start_from_trigger is True
    assert sensor.start_trigger_args.trigger_kwargs["camb_task_id"] == (
        "{{ ti.xcom_pull(task_ids='create', key='return_value', map_indexes=-1) }}"
    )
    assert sensor.upstream_task_ids == {"create"}  # the dependency stays


@needs_3_3
def test_a_jinja_pull_naming_its_map_index_is_kept():
    template = "{{ ti.xcom_pull(task_ids='create', map_indexes=-1) }}"
    sensor = parse(
        DAG_HEAD
        + f"    s = CambTaskSensor(task_id='w', kind='text-to-voice', camb_task_id={template!r}, "
        + "start_from_trigger=True)\n"
    )["s"]
    assert sensor.start_trigger_args.trigger_kwargs["camb_task_id"] == template


@needs_3_3
def test_a_jinja_pull_without_a_map_index_is_refused_because_it_would_hang_in_the_triggerer():
    template = "{{ ti.xcom_pull(task_ids='create') }}"
    source = (
        DAG_HEAD
        + f"    CambTaskSensor(task_id='w', kind='text-to-voice', camb_task_id={template!r}, start_from_trigger=True)\n"
    )
    with pytest.raises(CambInputError, match=r"map_indexes=-1"):
        parse(source)


@needs_3_3
def test_the_xcom_of_a_mapped_create_is_refused_with_the_form_that_works():
    source = DAG_HEAD + (
        "    many = TextToVoiceOperator.partial(task_id='many', voice_description=DESCRIPTION)"
        ".expand(text=['a', 'b'])\n"
        "    CambTaskSensor(task_id='w', kind='text-to-voice', camb_task_id=many.output, start_from_trigger=True)\n"
    )
    with pytest.raises(CambInputError, match=r"\.partial\(\.\.\.\)\.expand\(camb_task_id=create\.output\)"):
        parse(source)


@before_3_3
def test_before_3_3_a_templated_id_falls_back_to_deferring_from_a_worker_with_a_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sensor = parse(
            DAG_HEAD
            + "    s = CambTaskSensor(task_id='w', kind='text-to-voice', camb_task_id=create.output, "
            + "start_from_trigger=True)\n"
        )["s"]
    assert sensor.start_from_trigger is False
    assert any("needs Airflow 3.3 or newer" in str(w.message) for w in caught)


# --- listeners (e.g. OpenLineage's): Airflow refuses tasks that end in the triggerer -------------------


class _Listener:
    """A listener as plugins register them; it hears of nothing in these tests."""


@pytest.fixture
def a_listener():
    """One listener in every listener manager, as a plugin's is (Airflow 3 has one for the SDK, one for the core)."""
    from airflow.listeners.listener import get_listener_manager as core_manager
    from airflow.providers.common.compat.sdk import get_listener_manager as sdk_manager

    listener = _Listener()
    managers = {id(m): m for m in (core_manager(), sdk_manager())}.values()
    for manager in managers:
        manager.add_listener(listener)
    yield sdk_manager()
    for manager in managers:
        manager.pm.unregister(listener)


def test_by_default_waits_end_in_the_triggerer_when_airflow_has_no_listeners():
    namespace = parse(DAG_HEAD + "    s = CambTaskSensor(task_id='w', kind='text-to-voice', camb_task_id='t')\n")
    assert namespace["s"].end_from_trigger is True and namespace["create"].end_from_trigger is True


def test_with_listeners_the_default_resumes_on_a_worker_so_airflow_loads_the_dag(a_listener, airflow_home, tmp_path):
    assert a_listener.has_listeners
    dag_file = tmp_path / "with_listeners.py"
    dag_file.write_text(
        DAG_HEAD
        + "    CambTaskSensor(task_id='w', kind='text-to-voice', camb_task_id=create.output, deferrable=True)\n"
    )
    bag = dag_bag(dag_file)
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["parsed"]
    assert dag.get_task("w").end_from_trigger is False and dag.get_task("create").end_from_trigger is False
    explicit = tmp_path / "explicit.py"  # asked for explicitly, Airflow's own check refuses it, naming the fix
    explicit.write_text(
        DAG_HEAD + "    CambTaskSensor(task_id='w', kind='text-to-voice', camb_task_id='t', end_from_trigger=True)\n"
    )
    assert "Set end_from_trigger=False" in str(dag_bag(explicit).import_errors)


def dag_bag(path: Any) -> Any:
    if AIRFLOW_3:
        from airflow.dag_processing.dagbag import DagBag

        return DagBag(dag_folder=str(path))
    from airflow.models.dagbag import DagBag

    return DagBag(dag_folder=str(path), include_examples=False)
