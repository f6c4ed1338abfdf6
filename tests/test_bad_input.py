"""Bad input is refused clearly before anything is sent; odd ids travel encoded and arrive exactly.

- the create call (hook and ``TextToVoiceOperator``) refuses empty, whitespace-only, too short, non-string
  and very large inputs with a ``CambInputError``, and the stand-in sees no request at all;
- CAMB task ids with ``/``, ``..``, ``?``, ``#``, spaces and non-ASCII reach the stand-in exactly, on the
  sync hook path, the async trigger path and a whole deferrable sensor run;
- a run id that is not a whole number is refused by ``TextToVoiceResultOperator`` (and the custom-voice
  call) before any request, failing the task without retries;
- the media result operators (speech, sound) refuse a bad run id, output type or destination before any request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_camb.exceptions import CambInputError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.kinds import TEXT_TO_VOICE
from airflow_provider_camb.kinds._fields import MAX_INPUT_CHARS
from airflow_provider_camb.operators.text_to_sound import CambTextToSoundResultOperator
from airflow_provider_camb.operators.text_to_speech import CambTextToSpeechResultOperator
from airflow_provider_camb.triggers.camb_task import CambTaskTrigger
from tests.shared import (
    DESCRIPTION,
    TEXT,
    assert_deferred,
    ids,
    logged,
    result_of,
    run_id_of,
    text_to_voice_trigger,
    trigger_events,
)

WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
#: Task ids that would change the request if sent unencoded (no ``{``: the sensor's id is templated).
AWKWARD_IDS = ["a/b", "..", "../status", "a/../b", "x?run_id=1", "x#frag", "two words", "ü-ñ-日本", "%2F", " lead"]
#: Run ids that are not whole numbers, many of them path tricks.
BAD_RUN_IDS = ["1/../2", "..", "12?x=1", "12#f", "1 2", "١٢", "abc", "1.5", "-4", ""]


@pytest.fixture
def hook(camb_connection: Any) -> Iterator[CambHook]:
    with CambHook() as hook:
        yield hook


def test_input_limit_is_what_the_tests_assume() -> None:
    assert MAX_INPUT_CHARS == 10_000


# --- create: refused before any request ----------------------------------------------------------

BAD_CREATE_INPUTS = {
    "empty text": ("", DESCRIPTION, "text must not be empty"),
    "whitespace-only text": (" \n\t\u3000", DESCRIPTION, "text must not be empty"),
    "text is None": (None, DESCRIPTION, "text must be a string"),
    "text is an int": (42, DESCRIPTION, "text must be a string"),
    "text is bytes": (b"hello", DESCRIPTION, "text must be a string"),
    "text is a list": (["hello"], DESCRIPTION, "text must be a string"),
    "very large text": ("x" * (MAX_INPUT_CHARS + 1), DESCRIPTION, "at most 10000"),
    "huge text": ("word " * 400_000, DESCRIPTION, "at most 10000"),
    "empty description": (TEXT, "", "voice_description must not be empty"),
    "whitespace-only description": (TEXT, "   \n ", "voice_description must not be empty"),
    "description is a dict": (TEXT, {"tone": "warm"}, "voice_description must be a string"),
    "short description": (TEXT, "A calm voice.", "at least 100 characters and 18 words"),
    "long but only 17 words": (TEXT, "extraordinarily " * 17, "at least 100 characters and 18 words"),
    "18 words but under 100 characters": (TEXT, "a b c d e f g h i j k l m n o p q r s t", "at least 100"),
    "padded to 100 characters with spaces": (TEXT, "calm " * 5 + " " * 100, "at least 100"),
    "very large description": (TEXT, "deep " * 3000, "at most 10000"),
    "zero-width text": ("\u200b\u2060\ufeff \u200d", DESCRIPTION, "text must not be empty"),
    "text with a NUL": ("Hello\x00there", DESCRIPTION, "NUL character"),
    "text with a lone surrogate": ("Hello \udcff there", DESCRIPTION, "lone surrogate"),
    "description of zero-width words": (TEXT, "A warm voice" + " \u200b\u200c" * 60, "3 words"),
    "zero-width description": (TEXT, "\u200b " * 60, "voice_description must not be empty"),
    "description with a NUL": (TEXT, DESCRIPTION + "\x00", "NUL character"),
}


@pytest.mark.parametrize(("text", "description", "message"), BAD_CREATE_INPUTS.values(), ids=BAD_CREATE_INPUTS)
def test_the_hook_refuses_bad_create_input_before_any_request(
    hook: CambHook, camb_standin: Any, text: Any, description: Any, message: str
) -> None:
    with pytest.raises(CambInputError, match=message):
        hook.create_text_to_voice(text, description)
    assert camb_standin.request_count() == 0


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=WHITESPACE, max_size=50))
def test_any_whitespace_only_text_is_refused_before_any_request(hook: CambHook, camb_standin: Any, text: str) -> None:
    with pytest.raises(CambInputError, match="must not be empty"):
        hook.create_text_to_voice(text, DESCRIPTION)
    assert camb_standin.request_count() == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"project_name": ""}, "project_name must not be empty"),
        ({"project_description": 5}, "project_description must be a string"),
        ({"folder_id": "0"}, "folder_id must be a whole number from 1"),
        ({"folder_id": True}, "folder_id must be a whole number"),
    ],
)
def test_the_hook_refuses_bad_optional_fields_before_any_request(
    hook: CambHook, camb_standin: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(CambInputError, match=message):
        hook.create_text_to_voice(TEXT, DESCRIPTION, **options)
    assert camb_standin.request_count() == 0


CREATE_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_camb.operators.text_to_voice import TextToVoiceOperator

with DAG("{dag_id}", start_date=pendulum.datetime(2024, 1, 1), schedule=None) as dag:
    TextToVoiceOperator(task_id="create", text={text}, voice_description={description}, retries=2)
"""

OPERATOR_CASES = {
    "empty text": ("''", repr(DESCRIPTION), "text must not be empty"),
    "whitespace-only text from a template": ("'{{ \"   \" }}'", repr(DESCRIPTION), "text must not be empty"),
    "text is an int": ("42", repr(DESCRIPTION), "text must be a string"),
    "very large text": ("'x' * 20000", repr(DESCRIPTION), "at most 10000"),
    "short description": (repr(TEXT), "'A calm voice.'", "at least 100 characters and 18 words"),
}


@pytest.mark.parametrize(("text", "description", "message"), OPERATOR_CASES.values(), ids=OPERATOR_CASES)
def test_the_create_operator_fails_bad_input_clearly_without_retries_or_requests(
    run_dag: Any, camb_connection: Any, capfd: pytest.CaptureFixture[str], text: str, description: str, message: str
) -> None:
    dag_id = f"bad_input_create_{next(ids)}"
    result = run_dag.run(CREATE_DAG.format(dag_id=dag_id, text=text, description=description))
    assert result.task_states == {"create": "failed"}
    assert result.tries["create"] == 1  # bad input cannot get better by retrying
    output = capfd.readouterr()
    assert "CambInputError" in output.out + output.err
    assert message in output.out + output.err
    assert camb_connection.request_count() == 0


# --- task ids: encoded, and received exactly -------------------------------------------------------


def _finish_after_first_check(standin: Any, camb_task_id: str) -> Future[None]:
    """In a helper thread: once the first status request was answered (PENDING), let the task succeed."""

    def finish() -> None:
        deadline = time.monotonic() + 60
        while not standin.requests("status"):
            if time.monotonic() > deadline:
                raise TimeoutError("nobody checked the task")
            time.sleep(0.02)
        standin.add_task(task_id=camb_task_id, status="SUCCESS")

    executor = ThreadPoolExecutor(max_workers=1)
    future = executor.submit(finish)
    executor.shutdown(wait=False)
    return future


@pytest.mark.parametrize("camb_task_id", AWKWARD_IDS)
def test_the_trigger_sends_awkward_task_ids_exactly_and_finds_the_task(camb_connection: Any, camb_task_id: str) -> None:
    camb_connection.add_task(task_id=camb_task_id, status="PENDING")
    finished = _finish_after_first_check(camb_connection, camb_task_id)
    events = asyncio.run(trigger_events(text_to_voice_trigger(camb_task_id)))
    finished.result(timeout=5)
    assert [event["status"] for event in events] == ["SUCCESS"]
    assert events[0]["task_id"] == camb_task_id
    received = camb_connection.requests("status")
    assert len(received) >= 2  # PENDING, then SUCCESS
    assert {request.path_id for request in received} == {camb_task_id}
    assert all(request.path.startswith("/text-to-voice/") for request in received)


SENSOR_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_camb.sensors.camb_task import CambTaskSensor

with DAG("{dag_id}", start_date=pendulum.datetime(2024, 1, 1), schedule=None) as dag:
    CambTaskSensor(
        task_id="wait", kind="text-to-voice", camb_task_id={camb_task_id!r}, poll_interval=0.5, deferrable=True,
        timeout=60,
    )
"""


def test_a_deferrable_sensor_waits_on_an_awkward_task_id_end_to_end(
    run_dag: Any, camb_connection: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    camb_task_id = "../a b/?x=1#ü"
    camb_connection.add_task(task_id=camb_task_id, status="PENDING")
    finished = _finish_after_first_check(camb_connection, camb_task_id)
    result = run_dag.run(SENSOR_DAG.format(dag_id=f"bad_input_sensor_{next(ids)}", camb_task_id=camb_task_id))
    finished.result(timeout=5)
    assert result.task_states == {"wait": "success"}
    assert result.xcom("wait") == run_id_of(camb_task_id)
    assert_deferred(logged(capfd), camb_task_id)
    received = camb_connection.requests("status")
    assert len(received) >= 2  # the sync check before deferring, then the trigger's polls
    assert {request.path_id for request in received} == {camb_task_id}


@pytest.mark.parametrize("camb_task_id", ["", "   ", 7, None, "x" * 1025])
def test_the_trigger_refuses_a_bad_task_id_without_a_request(camb_connection: Any, camb_task_id: Any) -> None:
    events = asyncio.run(trigger_events(text_to_voice_trigger(camb_task_id), 10))
    assert [event["outcome"] for event in events] == ["error"]
    assert events[0]["error_type"] == "CambInputError"
    assert "task id" in events[0]["message"]
    assert camb_connection.request_count() == 0


# --- ids and numbers that a missing XCom or a bad template leave behind ---------------------------

MISSING_TASK_IDS = ["", " ", "None", "none", "null", " NULL ", "[]", "{}", None]


@pytest.mark.parametrize("task_id", MISSING_TASK_IDS)
def test_a_task_id_a_missing_xcom_left_is_refused_with_a_hint(hook: CambHook, camb_standin: Any, task_id: Any) -> None:
    with pytest.raises(CambInputError, match="upstream XCom that should hold it is probably missing"):
        hook.get_task_status("text-to-voice", task_id)
    event = asyncio.run(
        _first_event(CambTaskTrigger(camb_task_id=task_id, poll_interval=0.05, kind=TEXT_TO_VOICE.name))
    )
    assert event["outcome"] == "error" and "XCom" in event["message"]
    assert camb_standin.request_count() == 0


async def _first_event(trigger: CambTaskTrigger) -> dict[str, Any]:
    async with asyncio.timeout(20):
        async for event in trigger.run():
            return dict(event.payload)
    raise AssertionError("no event")


NOT_WHOLE_NUMBERS = [-1, 0, 10**30, 2**63, "0", "-1", "1" * 30, "9" * 5000, True, 1.5, "1.0", "１２"]


@pytest.mark.parametrize("value", NOT_WHOLE_NUMBERS, ids=repr)
@pytest.mark.parametrize("field", ["voice_id", "language", "folder_id"])
def test_ids_that_are_not_whole_numbers_from_1_are_refused_ints_and_strings_alike(
    hook: CambHook, camb_standin: Any, field: str, value: Any
) -> None:
    fields: dict[str, Any] = {"voice_id": 7, "language": 1, field: value}
    with pytest.raises(CambInputError, match=f"{field} must be a whole number from 1"):
        hook.create_tts(TEXT, **fields)
    assert camb_standin.request_count() == 0


@pytest.mark.parametrize("duration", [1e308, float("inf"), float("nan"), 0, -1, 601, "1e308", "nan"], ids=repr)
def test_a_sound_duration_outside_camb_range_is_refused(hook: CambHook, camb_standin: Any, duration: Any) -> None:
    with pytest.raises(CambInputError, match="duration must be a positive number of seconds, at most 600"):
        hook.create_text_to_sound("Rain on a tin roof", duration=duration)
    assert camb_standin.request_count() == 0


@pytest.mark.parametrize("run_id", [0, "0", -1, 10**30, "00"], ids=repr)
def test_a_run_id_below_1_is_refused(hook: CambHook, camb_standin: Any, run_id: Any) -> None:
    with pytest.raises(CambInputError, match="run id must be a whole number from 1"):
        hook.get_text_to_voice_result(run_id)
    assert camb_standin.request_count() == 0


# --- run ids: whole numbers only ------------------------------------------------------------------

RESULT_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_camb.operators.text_to_voice import TextToVoiceResultOperator

with DAG("{dag_id}", start_date=pendulum.datetime(2024, 1, 1), schedule=None) as dag:
    TextToVoiceResultOperator(
        task_id="download",
        run_id="{{{{ params.run_id }}}}",
        params={{"run_id": {run_id!r}}},
        destination={destination!r},
        retries=2,
    )
"""


@pytest.mark.parametrize("run_id", BAD_RUN_IDS)
def test_the_result_operator_refuses_a_run_id_that_is_not_a_whole_number(
    run_dag: Any, camb_connection: Any, capfd: pytest.CaptureFixture[str], tmp_path: Path, run_id: str
) -> None:
    source = RESULT_DAG.format(dag_id=f"bad_input_result_{next(ids)}", run_id=run_id, destination=str(tmp_path))
    result = run_dag.run(source)
    assert result.task_states == {"download": "failed"}
    assert result.tries["download"] == 1
    output = capfd.readouterr()
    assert "A CAMB run id must be a whole number" in output.out + output.err
    assert camb_connection.request_count() == 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("operator", [CambTextToSpeechResultOperator, CambTextToSoundResultOperator])
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"run_id": "abc"}, "run id must be a whole number"),
        ({"run_id": "7/../8"}, "run id must be a whole number"),
        ({"output_type": "MP3"}, "output_type must be one of"),
        ({"destination": ""}, "destination must be a local path"),
    ],
)
def test_a_media_result_operator_refuses_bad_input_before_any_request(
    camb_connection: Any, tmp_path: Path, operator: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(CambInputError, match=message):
        result_of(operator, **{"run_id": 1000, "destination": tmp_path, **options})
    assert camb_connection.requests() == []


@pytest.mark.parametrize("run_id", ["1/../2", "12?x=1", "12#f", "١٢"])
def test_keeping_a_voice_refuses_a_run_id_that_is_not_a_whole_number(
    hook: CambHook, camb_standin: Any, tmp_path: Path, run_id: str
) -> None:
    audio = tmp_path / "voice.wav"
    audio.write_bytes(b"RIFF0000WAVE")
    with pytest.raises(CambInputError, match="whole number"):
        hook.create_custom_voice(audio, "Narrator", 1, run_id=run_id)
    assert camb_standin.request_count() == 0
