"""The trigger event schema: what this release writes, and what 0.1.0 and the 0.2 pre-releases wrote.

Users upgrade with waits deferred, so a worker of this release resumes tasks whose events an older
triggerer wrote. The old payloads below are copied from what those releases' triggers built
(``git log -p -- airflow_provider_camb/triggers/``): 0.1.0 wrote ``status``, ``task_id``, ``run_id``,
``message``, ``exception_reason``, ``polls`` and ``elapsed``; later commits added ``kind``.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_camb import events
from airflow_provider_camb.api import CambTaskStatus
from airflow_provider_camb.exceptions import (
    CambAuthError,
    CambError,
    CambInputError,
    CambNotFoundError,
    CambPaymentRequiredError,
    CambTaskFailedError,
    CambWaitTimeoutError,
)
from airflow_provider_camb.kinds import DUB
from airflow_provider_camb.sensors.camb_task import CambTaskSensor


def v0_1_0(status: str, **fields: Any) -> dict[str, Any]:
    """An event as 0.1.0's TextToVoiceTrigger._event built it."""
    payload = {
        "status": status,
        "task_id": "task-1",
        "run_id": None,
        "message": None,
        "exception_reason": None,
        "polls": 3,
        "elapsed": 10.512,
    }
    payload.update(fields)
    return payload


def pre_0_2_0(status: str, kind: str = "tts", **fields: Any) -> dict[str, Any]:
    """An event as CambTaskTrigger built it before the schema (0.1.0's fields and ``kind``)."""
    return {**v0_1_0(status, **fields), "kind": kind}


OLD_SUCCESS = {"run_id": 1001}
OLD_FAILURE = {"message": "Generation failed", "exception_reason": "PROCESSING_ERROR"}
OLD_DEADLINE = {"message": "CAMB task 'task-1' did not finish before the deadline (last status PENDING)"}
OLD_AUTH = {
    "message": "CAMB refused the API key of connection 'camb_default' (HTTP 401).",
    "exception_reason": "CambAuthError",  # our error class, in what is CAMB's field
}


class Resumed:
    """What a sensor's ``execute_complete`` made of an event: its return value and its XCom pushes."""

    def __init__(self, payload: dict[str, Any], kind: str = "text-to-voice") -> None:
        self.xcoms: dict[str, Any] = {}
        ti = SimpleNamespace(xcom_push=lambda key, value: self.xcoms.__setitem__(key, value))
        sensor = CambTaskSensor(task_id="wait", kind=kind, camb_task_id="task-1", deferrable=True)
        self.result = sensor.execute_complete({"ti": ti}, json.loads(json.dumps(payload)))


@pytest.mark.parametrize("write", [v0_1_0, pre_0_2_0], ids=["0.1.0", "pre-0.2.0"])
def test_an_old_success_decodes_and_resumes_with_its_run_id(write):
    payload = write("SUCCESS", **OLD_SUCCESS)
    event = events.decode_event(payload)
    assert event["outcome"] == "finished" and event["status"] == "SUCCESS" and event["run_id"] == 1001
    assert event["kind"] == payload.get("kind", "text-to-voice")  # 0.1.0 only waited for text-to-voice
    assert event["polls"] == 3 and event["elapsed"] == 10.512
    resumed = Resumed(payload)
    assert resumed.result == 1001 and resumed.xcoms == {"run_id": 1001}


@pytest.mark.parametrize("write", [v0_1_0, pre_0_2_0], ids=["0.1.0", "pre-0.2.0"])
@pytest.mark.parametrize(
    ("status", "error"),
    [("ERROR", CambTaskFailedError), ("TIMEOUT", CambTaskFailedError), ("PAYMENT_REQUIRED", CambPaymentRequiredError)],
)
def test_an_old_camb_failure_decodes_as_finished_and_fails_with_camb_s_reason(write, status, error):
    event = events.decode_event(write(status, **OLD_FAILURE))
    assert event["outcome"] == "finished" and event["status"] == status
    assert event["exception_reason"] == "PROCESSING_ERROR"  # CAMB's, untouched
    with pytest.raises(error, match=r"task-1.*PROCESSING_ERROR"):
        Resumed(write(status, **OLD_FAILURE))


@pytest.mark.parametrize("write", [v0_1_0, pre_0_2_0], ids=["0.1.0", "pre-0.2.0"])
def test_an_old_timeout_of_ours_decodes_as_a_deadline_not_as_camb_s_timeout(write):
    event = events.decode_event(write("timeout", **OLD_DEADLINE))
    assert event["outcome"] == "deadline" and event["message"] == OLD_DEADLINE["message"]
    assert "status" not in event and event["last_status"] is None
    with pytest.raises(CambWaitTimeoutError, match="did not finish before the deadline"):
        Resumed(write("timeout", **OLD_DEADLINE))


@pytest.mark.parametrize("write", [v0_1_0, pre_0_2_0], ids=["0.1.0", "pre-0.2.0"])
def test_an_old_error_of_ours_decodes_with_its_error_type_out_of_exception_reason(write):
    event = events.decode_event(write("error", **OLD_AUTH))
    assert event["outcome"] == "error" and event["error_type"] == "CambAuthError"
    assert "exception_reason" not in event
    with pytest.raises(CambAuthError, match="refused the API key"):
        Resumed(write("error", **OLD_AUTH))


@pytest.mark.parametrize("name", ["AirflowNotFoundException", "SystemExit", "__class__", None])
def test_an_old_error_of_a_type_outside_the_closed_set_raises_a_plain_camb_error(name):
    event = events.decode_event(
        v0_1_0("error", message="The conn_id `camb_default` isn't defined", exception_reason=name)
    )
    assert event["error_type"] == "CambError"
    error = events.error_of(event)
    assert type(error) is CambError and "camb_default" in str(error)


def test_each_new_event_round_trips_through_json():
    status = CambTaskStatus("task-2", "SUCCESS", run_id=7, kind=DUB)
    written = [
        events.encode_finished(status, polls=2, elapsed=1.23456),
        events.encode_deadline(DUB, "task-2", status, polls=9, elapsed=30.0, cause="HTTP 503"),
        events.encode_error(
            "dub", "task-2", CambNotFoundError("CAMB does not know task 'task-2'"), polls=1, elapsed=0.5
        ),
    ]
    for event in written:
        assert events.decode_event(json.loads(json.dumps(event))) == event
    assert [event["outcome"] for event in written] == ["finished", "deadline", "error"]
    assert written[0]["elapsed"] == 1.235
    assert "dubbing task 'task-2'" in written[1]["message"] and "HTTP 503" in written[1]["message"]
    assert written[2]["error_type"] == "CambNotFoundError"
    assert isinstance(events.error_of(written[2]), CambNotFoundError)


def test_an_error_of_another_library_travels_as_a_camb_error():
    event = events.encode_error("tts", "task-3", KeyError("boom"), polls=0, elapsed=0.0)
    assert event["error_type"] == "CambError"


@pytest.mark.parametrize(
    "payload",
    [
        "success",
        [],
        {"status": "SUCCESS"},  # no task id
        {"outcome": "exploded", "task_id": "t", "kind": "tts"},
        {"outcome": "finished", "task_id": "t", "kind": "tts", "status": "SUCCESS", "run_id": "12"},
        {"outcome": "finished", "task_id": "t", "kind": "tts", "status": None},
    ],
)
def test_an_unreadable_event_is_refused_naming_what_is_wrong(payload):
    with pytest.raises(CambError, match="could not be read") as refused:
        events.decode_event(payload)
    assert not isinstance(refused.value, CambInputError)


def test_an_unknown_kind_in_an_old_event_fails_naming_the_kind():
    with pytest.raises(CambInputError, match="Unknown CAMB task kind 'no-such-kind'"):
        events.status_of(events.decode_event(pre_0_2_0("SUCCESS", kind="no-such-kind", run_id=5))).run_id_or_raise()
