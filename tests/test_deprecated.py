"""The 0.1.0 names: each still works and warns once, naming the new name; the 0.1.0 classes never warn."""

from __future__ import annotations

import importlib
import warnings

import pytest

from airflow_provider_camb import _deprecated
from airflow_provider_camb.api import CambTaskStatus
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.kinds import TEXT_TO_VOICE

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
