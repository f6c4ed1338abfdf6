"""The 0.1.0 names: each still works and warns once, naming the new name; the 0.1.0 classes never warn.

The 0.1.0 classes (``TextToVoiceTrigger``, ``TextToVoiceStatusSensor``, ``TextToVoiceOperator``,
``TextToVoiceResultOperator``) are tested here as names: what they do is the generic classes' behaviour,
tested under the generic names in test_trigger, test_sensor and the operators' modules.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import warnings

import pytest

from airflow_provider_camb import _deprecated
from airflow_provider_camb.api import CambTaskStatus
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.kinds import TEXT_TO_VOICE
from airflow_provider_camb.operators.camb_result import CambResultOperator
from airflow_provider_camb.operators.camb_task import CambTaskOperator
from airflow_provider_camb.operators.text_to_voice import TextToVoiceOperator, TextToVoiceResultOperator
from airflow_provider_camb.sensors.camb_task import CambTaskSensor
from airflow_provider_camb.sensors.text_to_voice import TextToVoiceStatusSensor
from airflow_provider_camb.triggers.text_to_voice import TextToVoiceTrigger
from tests.shared import assert_deferred, ids, logged, pending_after_first_check, run_id_of, trigger_events

EVERY_MOVED_NAME = [
    (f"airflow_provider_camb.{module}", name) for module, names in _deprecated.MOVED.items() for name in names
]


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """Each test sees first uses: the once-per-process memory starts empty."""
    monkeypatch.setattr(_deprecated, "_warned", set())


def first_use(module: str, name: str) -> tuple[object, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = getattr(importlib.import_module(module), name)
    return value, caught


@pytest.mark.parametrize(("module", "name"), EVERY_MOVED_NAME, ids=[".".join(pair) for pair in EVERY_MOVED_NAME])
def test_every_0_1_0_name_still_works_and_warns_once_naming_the_new_one(module, name):
    value, caught = first_use(module, name)
    assert [type(warning.message) for warning in caught] == [DeprecationWarning]
    message = str(caught[0].message)
    where, instead = _deprecated.MOVED[module.removeprefix("airflow_provider_camb.")][name]
    new_module, _, new_name = where.partition(":")
    assert message.startswith(f"{module}.{name} is deprecated since 0.2.0: use airflow_provider_camb.")
    assert (instead or new_name) in message
    assert value is getattr(importlib.import_module(f"airflow_provider_camb.{new_module}"), new_name)
    assert caught[0].filename == __file__  # the warning points at the caller, not at our machinery
    assert first_use(module, name)[1] == []  # once per process


def test_the_old_import_statements_of_0_1_0_work():
    with pytest.warns(DeprecationWarning, match=r"api\.TextToVoiceStatus .*api\.CambTaskStatus"):
        from airflow_provider_camb.api import TextToVoiceStatus
    with pytest.warns(DeprecationWarning, match=r"media_extension"):
        from airflow_provider_camb.operators.text_to_voice import preview_extension
    assert TextToVoiceStatus is CambTaskStatus
    assert preview_extension("audio/wav", "https://storage.example/x") == "wav"


def test_a_name_that_never_existed_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        importlib.import_module("airflow_provider_camb.api").NoSuchName  # noqa: B018


def test_the_old_status_from_event_reads_old_and_new_events():
    from airflow_provider_camb import events

    with pytest.warns(DeprecationWarning, match="events.decode_event"):
        from airflow_provider_camb.triggers.text_to_voice import status_from_event
    deadline = events.encode_deadline(TEXT_TO_VOICE, "t", None, polls=1, elapsed=1.0)
    assert status_from_event(dict(deadline)).status == "timeout"  # as 0.1.0 callers expect
    assert status_from_event({"status": "SUCCESS", "task_id": "t", "run_id": 3}).run_id == 3


def test_the_hook_methods_of_0_1_0_work_and_warn_once(camb_connection):
    task_id = camb_connection.add_task(status="SUCCESS")
    hook = CambHook()
    with pytest.warns(DeprecationWarning, match=r'get_task_status\("text-to-voice", task_id\)'):
        status = hook.get_text_to_voice_status(task_id)
    assert status.status == "SUCCESS"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hook.get_text_to_voice_status(task_id)  # no second warning


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("airflow_provider_camb.operators.text_to_voice", "TextToVoiceOperator"),
        ("airflow_provider_camb.operators.text_to_voice", "TextToVoiceResultOperator"),
        ("airflow_provider_camb.operators.text_to_voice", "CambCreateCustomVoiceOperator"),
        ("airflow_provider_camb.sensors.text_to_voice", "TextToVoiceStatusSensor"),
        ("airflow_provider_camb.triggers.text_to_voice", "TextToVoiceTrigger"),
    ],
)
def test_the_0_1_0_classes_never_warn(module, name):
    value, caught = first_use(module, name)
    assert caught == [] and isinstance(value, type)


def test_the_0_1_0_trigger_serializes_under_its_own_name_without_a_kind(camb_connection):
    trigger = TextToVoiceTrigger("task-1", "camb_default", poll_interval=7, deadline=1234.5)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_camb.triggers.text_to_voice.TextToVoiceTrigger"
    assert "kind" not in kwargs  # the class says it, as in 0.1.0's rows
    assert TextToVoiceTrigger(**kwargs).serialize() == (classpath, kwargs)
    stored = json.dumps(kwargs)
    assert camb_connection.api_key not in stored
    assert "x-api-key" not in stored.lower() and "http" not in stored


def test_the_0_1_0_trigger_waits_for_a_text_to_voice_task(camb_connection):
    task_id = camb_connection.add_task(pending_seconds=0.3)
    trigger = TextToVoiceTrigger(task_id, poll_interval=0.1, wait_before_first_poll=False)
    (event,) = asyncio.run(trigger_events(trigger))
    assert (event["status"], event["kind"], event["run_id"]) == ("SUCCESS", "text-to-voice", run_id_of(task_id))
    assert {request.path for request in camb_connection.requests("status")} == {f"/text-to-voice/{task_id}"}


SENSOR_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_camb.sensors.text_to_voice import TextToVoiceStatusSensor

with DAG("{dag_id}", start_date=pendulum.datetime(2024, 1, 1), schedule=None) as dag:
    TextToVoiceStatusSensor(task_id="wait", camb_task_id={camb_task_id!r}, poll_interval=0.5, deferrable=True)
"""


def test_a_0_1_0_dag_with_the_sensor_waits_in_the_triggerer_and_pushes_the_run_id(run_dag, camb_connection, capfd):
    pending_after_first_check(camb_connection)
    task_id = camb_connection.add_task()
    result = run_dag.run(SENSOR_DAG.format(dag_id=f"compat_sensor_{next(ids)}", camb_task_id=task_id))
    assert result.task_states == {"wait": "success"}
    assert result.xcom("wait") == result.xcom("wait", "run_id") == run_id_of(task_id)
    assert_deferred(logged(capfd), task_id)


def test_the_0_1_0_classes_are_the_generic_classes_for_text_to_voice():
    sensor = TextToVoiceStatusSensor(task_id="wait", camb_task_id="t")
    assert isinstance(sensor, CambTaskSensor) and sensor.kind == TEXT_TO_VOICE
    assert issubclass(TextToVoiceOperator, CambTaskOperator) and TextToVoiceOperator.kind == TEXT_TO_VOICE
    assert issubclass(TextToVoiceResultOperator, CambResultOperator)
