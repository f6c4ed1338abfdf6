"""A retry never pays twice: each case of issue 16 as a real DAG run (``dag.test()``, Airflow's own retries)
against the stand-in over loopback, counting the CAMB tasks (or voices) that exist afterwards.

On Airflow 3.3+ a later try reattaches through the task state store; before 3.3 a retry that cannot know
what an earlier try created fails without retries. ``tests/test_retries_deployment.py`` adds the real
``kill -9`` of a worker and a person clearing the task.
"""

from __future__ import annotations

import json
import os
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_camb.testing import CambStandIn
from tests.airflow_harness import HAS_TASK_STATE_STORE as HAS_STORE
from tests.shared import DESCRIPTION, TEXT, connect, ids

PROJECT = "retries-and-billing"

DAG = """
import pendulum
from datetime import timedelta
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_camb.operators.text_to_voice import CambCreateCustomVoiceOperator, TextToVoiceOperator

{prelude}

with DAG("{dag_id}", start_date=pendulum.datetime(2024, 1, 1), schedule=None) as dag:
    {operator}(
        task_id="create",
        retries=2,
        retry_delay=timedelta(seconds=0),
        {arguments}
    )
"""


def create_arguments(options: str = "") -> str:
    return f"text={TEXT!r}, voice_description={DESCRIPTION!r}, project_name={PROJECT!r}, {options}"


def run(run_dag: Any, arguments: str, operator: str = "TextToVoiceOperator", prelude: str = "") -> Any:
    source = DAG.format(dag_id=f"retries_{next(ids)}", operator=operator, arguments=arguments, prelude=prelude)
    return run_dag.run(source)


def logs(capfd: pytest.CaptureFixture[str]) -> str:
    output = capfd.readouterr()
    return output.out + output.err


def assert_fails_closed(result: Any, output: str, *, tries: int) -> None:
    """The Airflow task failed without further retries, saying a CAMB task may exist and how to opt in."""
    assert result.task_states == {"create": "failed"}
    assert result.tries["create"] == tries
    assert "CambUncertainCreateError" in output
    assert "retry_uncertain_create=True" in output


# --- 1. the create reply comes after the connection's timeout, but CAMB did create the task -------------


def test_a_create_whose_reply_comes_too_late_fails_without_retries(run_dag, camb_standin, monkeypatch, capfd):
    connect(monkeypatch, camb_standin, timeout=2)
    camb_standin.inject("slow", endpoint="create", delay=6, act=True)  # created at once, answered after 6 s
    result = run(run_dag, create_arguments())
    output = logs(capfd)
    assert camb_standin.task_count() == 1
    assert_fails_closed(result, output, tries=1)
    assert "CAMB may have created a text-to-voice task" in output
    assert "the create request was sent at" in output
    assert f"in project {PROJECT!r} whose text starts {TEXT!r}" in output


@pytest.mark.parametrize(
    ("fault", "cause"),
    [("drop", "CambConnectionError"), ("http_502", "HTTP 502"), ("malformed_json", "not JSON")],
    ids=["reset after send", "5xx after send", "2xx that is not JSON"],
)
def test_every_uncertain_create_fails_without_retries(run_dag, camb_connection, capfd, fault, cause):
    camb_connection.inject(fault, endpoint="create", act=True)
    result = run(run_dag, create_arguments())
    output = logs(capfd)
    assert camb_connection.task_count() == 1
    assert_fails_closed(result, output, tries=1)
    assert cause in output


def test_retry_uncertain_create_lets_a_retry_create_a_new_task(run_dag, camb_connection, capfd):
    camb_connection.inject("drop", endpoint="create", act=True)
    result = run(run_dag, create_arguments("retry_uncertain_create=True,"))
    output = logs(capfd)
    assert result.task_states == {"create": "success"}
    assert result.tries["create"] == 2
    assert camb_connection.task_count() == 2  # opted in: the first one may be paid for too
    assert "retry_uncertain_create=True, so going on" in output


def test_a_create_camb_refused_is_retried_by_airflow(run_dag, camb_connection, capfd):
    camb_connection.inject("unauthorized", endpoint="create")  # a refusal: certainly nothing was created
    result = run(run_dag, create_arguments())
    if HAS_STORE:
        assert result.task_states == {"create": "success"}
        assert result.tries["create"] == 2
    else:
        assert_fails_closed(result, logs(capfd), tries=2)  # the retry cannot know what try 1 did
    assert camb_connection.task_count() == int(HAS_STORE)


# --- 2. waiting on the worker, with an execution_timeout shorter than CAMB's work ---------------------------


@pytest.mark.skipif(
    not HAS_STORE,
    reason="Airflow 2's dag.test() stops at AirflowTaskTimeout (a BaseException there); the lost-worker test "
    "shows what a retry does on 2.11",
)
def test_a_worker_wait_cut_by_execution_timeout_reattaches(run_dag, camb_connection, capfd):
    camb_connection.configure(pending_reads=2)  # PENDING for try 1's read and try 2's reattach, then SUCCESS
    options = "wait_for_completion=True, deferrable=False, poll_interval=60, execution_timeout=timedelta(seconds=3),"
    result = run(run_dag, create_arguments(options))
    output = logs(capfd)
    assert camb_connection.task_count() == 1
    assert result.task_states == {"create": "success"}
    assert result.tries["create"] >= 2
    assert "Try 2 reattaches to CAMB text-to-voice task" in output
    assert isinstance(result.xcom("create"), int)


# --- 3. deferrable, and the first status reads answer 404 (the task is not readable yet) ---------------


def test_a_404_just_after_the_create_is_read_again_in_the_worker_and_the_triggerer(run_dag, camb_connection):
    camb_connection.inject("not_found", endpoint="status", times=5)  # 3 for the worker's check, 2 for the trigger
    result = run(run_dag, create_arguments("wait_for_completion=True, deferrable=True, poll_interval=0.3,"))
    assert result.task_states == {"create": "success"}
    assert result.tries["create"] == 1
    assert camb_connection.task_count() == 1
    statuses = [request.status for request in camb_connection.requests("status")]
    assert statuses[:5] == [404] * 5 and statuses[-1] == 200


# --- 4. the worker dies after the create reply -------------------------------------------------------------

DIES_AFTER_THE_CREATE = """
from airflow_provider_camb.operators.text_to_voice import TextToVoiceOperator

class DiesAfterTheCreate(TextToVoiceOperator):
    '''Try 1's worker is lost right after the create reply (its first status read never happens).'''

    def execute(self, context):
        if context["ti"].try_number == 1:
            def lost(*args, **kwargs):
                raise RuntimeError("the worker was lost (emulated)")
            self.hook.get_task_status = lost
        return super().execute(context)
"""


def test_a_worker_lost_after_the_create_reply_reattaches(run_dag, camb_connection, capfd):
    arguments = create_arguments("wait_for_completion=True, deferrable=False, poll_interval=0.3,")
    result = run(run_dag, arguments, operator="DiesAfterTheCreate", prelude=DIES_AFTER_THE_CREATE)
    output = logs(capfd)
    assert camb_connection.task_count() == 1
    assert "the worker was lost (emulated)" in output
    if HAS_STORE:
        assert result.task_states == {"create": "success"}
        assert result.tries["create"] == 2
        assert "Try 2 reattaches to CAMB text-to-voice task" in output
    else:
        assert_fails_closed(result, output, tries=2)
        assert "Try 2 cannot know whether an earlier try of this task created a text-to-voice task" in output


def test_an_earlier_task_that_ended_in_error_is_replaced(run_dag, camb_connection, capfd):
    camb_connection.configure(outcome="ERROR", pending_seconds=0.3)
    result = run(run_dag, create_arguments("wait_for_completion=True, deferrable=False, poll_interval=0.2,"))
    output = logs(capfd)
    assert result.task_states == {"create": "failed"}
    if HAS_STORE:
        assert result.tries["create"] == 3
        assert camb_connection.task_count() == 3  # that is what retries are for: each try's task ended in ERROR
        assert "ended with ERROR: try 2 creates a new one" in output
    else:
        assert_fails_closed(result, output, tries=2)
        assert camb_connection.task_count() == 1


# --- 5. CambCreateCustomVoiceOperator -----------------------------------------------------------------------


def preview(tmp_path: Path) -> str:
    path = tmp_path / "preview.wav"
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(22050)
        audio.writeframes(b"\0\0" * 2205)
    return str(path)


def voice_arguments(tmp_path: Path) -> str:
    return f"preview={preview(tmp_path)!r}, voice_name='Narrator', gender=2,"


def test_a_custom_voice_whose_reply_comes_too_late_fails_without_retries(
    run_dag, camb_standin, monkeypatch, capfd, tmp_path
):
    connect(monkeypatch, camb_standin, timeout=2)
    camb_standin.inject("slow", endpoint="custom_voice", delay=6, act=True)
    result = run(run_dag, voice_arguments(tmp_path), operator="CambCreateCustomVoiceOperator")
    output = logs(capfd)
    assert camb_standin.voice_count() == 1
    assert_fails_closed(result, output, tries=1)
    assert "CAMB may have created a custom voice" in output and "named 'Narrator'" in output


LOST_AFTER_THE_VOICE = """
from airflow_provider_camb.operators.text_to_voice import CambCreateCustomVoiceOperator

class LostAfterTheVoice(CambCreateCustomVoiceOperator):
    '''Try 1's worker is lost right after the create-custom-voice reply.'''

    def record_lineage(self, *args, **kwargs):
        if self._try == 1:
            raise RuntimeError("the worker was lost (emulated)")
        super().record_lineage(*args, **kwargs)

    def execute(self, context):
        self._try = context["ti"].try_number
        return super().execute(context)
"""


def test_a_custom_voice_retry_returns_the_voice_of_the_earlier_try(run_dag, camb_connection, capfd, tmp_path):
    result = run(run_dag, voice_arguments(tmp_path), operator="LostAfterTheVoice", prelude=LOST_AFTER_THE_VOICE)
    output = logs(capfd)
    assert camb_connection.voice_count() == 1
    if HAS_STORE:
        assert result.task_states == {"create": "success"}
        assert result.xcom("create") == 5000  # the stand-in's first voice id
        assert "Try 2 returns CAMB custom voice 5000, created by try 1" in output
    else:
        assert_fails_closed(result, output, tries=2)


# --- a key rotated while a wait runs ------------------------------------------------------------------------


class KeyRotation(threading.Thread):
    """Once ``reads`` status reads were answered, rotate the stand-in's key (the old one refused from then on)
    and put the new one in the connection; once a read was refused and a later one answered, end the task."""

    def __init__(self, standin: CambStandIn, reads: int) -> None:
        super().__init__(daemon=True)
        self.standin, self.reads = standin, reads
        self.failure: BaseException | None = None

    def statuses(self) -> list[int]:
        return [request.status for request in self.standin.requests("status")]

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 120
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {self.statuses()}")
            time.sleep(0.02)

    def run(self) -> None:
        task_id = None
        try:
            self.wait_for(lambda: self.statuses().count(200) >= self.reads, f"{self.reads} answered reads")
            task_id = self.standin.requests("status")[0].path_id
            conn = json.loads(os.environ["AIRFLOW_CONN_CAMB_DEFAULT"])
            conn["password"] = self.standin.rotate_key()
            os.environ["AIRFLOW_CONN_CAMB_DEFAULT"] = json.dumps(conn)
            self.wait_for(lambda: 401 in self.statuses() and self.statuses()[-1] == 200, "a refusal, then an answer")
        except BaseException as error:
            self.failure = error
        finally:
            if task_id is not None:
                self.standin.add_task(task_id=task_id, status="SUCCESS")  # the wait can end now


@pytest.mark.parametrize(("deferrable", "reads"), [(False, 1), (True, 2)], ids=["worker", "triggerer"])
def test_a_key_rotated_while_a_wait_runs_is_read_again(run_dag, camb_connection, capfd, deferrable, reads):
    camb_connection.configure(pending_seconds=3600)  # PENDING until the rotation has been seen
    old_key = camb_connection.api_key
    rotation = KeyRotation(camb_connection, reads)  # in the triggerer: after its first poll with the old key
    rotation.start()
    result = run(run_dag, create_arguments(f"wait_for_completion=True, deferrable={deferrable}, poll_interval=0.2,"))
    rotation.join(timeout=30)
    output = logs(capfd)
    assert rotation.failure is None, rotation.failure
    assert result.task_states == {"create": "success"}
    assert result.tries["create"] == 1
    assert camb_connection.task_count() == 1
    assert "holds another key now (rotated?): sending again with it" in output
    assert old_key not in output and camb_connection.api_key not in output


# --- what clearing a task does to the store ------------------------------------------------------------------


@pytest.mark.skipif(not HAS_STORE, reason="the task state store came with Airflow 3.3")
def test_clearing_a_task_leaves_its_store_and_raises_max_tries(run_dag, camb_connection):
    """Airflow's clear keeps the task state store (only ``clear_on_success`` empties it) and raises
    ``max_tries``: the record's generation no longer matches, so the rerun creates a new task."""
    from airflow.models import DagRun, TaskInstance
    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.models.taskinstance import clear_task_instances
    from airflow.utils.session import create_session

    result = run(run_dag, create_arguments())
    assert result.task_states == {"create": "success"}
    with create_session() as session:
        (row,) = session.query(TaskStateStoreModel).filter_by(dag_id=result.dag_id, run_id=result.run_id).all()
        record = json.loads(row.value)
        assert record["camb_id"] == result.xcom("create")
        ti = session.query(TaskInstance).filter_by(dag_id=result.dag_id, run_id=result.run_id).one()
        assert record["generation"] == ti.max_tries
        dag_run = session.query(DagRun).filter_by(dag_id=result.dag_id, run_id=result.run_id).one()
        ti.dag_run = dag_run
        clear_task_instances([ti], session)
        session.flush()
        assert session.query(TaskStateStoreModel).filter_by(dag_id=result.dag_id).count() == 1
        assert ti.max_tries != record["generation"]


# --- the pieces: every create operator, the 404 window, trigger rows, one re-read of a refused key ------------

EVERY_CREATE = {
    "text-to-voice": ("TextToVoiceOperator", {"text": TEXT, "voice_description": DESCRIPTION}, "whose text starts"),
    "tts": ("CambTextToSpeechOperator", {"text": TEXT, "voice_id": 1, "language": 1}, "whose text starts"),
    "translated-tts": (
        "CambTranslatedTextToSpeechOperator",
        {"text": TEXT, "voice_id": 1, "source_language": 1, "target_language": 76},
        "whose text starts",
    ),
    "dub": (
        "CambDubbingOperator",
        {
            "video_url": "https://media.example.com/a.mp4?token=secret",
            "source_language": 1,
            "target_languages": [76],
        },
        "dubbing media from media.example.com",
    ),
    "text-to-sound": ("CambTextToSoundOperator", {"prompt": "Rain on a tin roof"}, "whose prompt starts 'Rain on"),
}


class FirstTry:
    """The task instance of a first try without retries, for ``execute()`` called directly."""

    try_number, max_tries = 1, 0

    def xcom_push(self, key: str, value: Any) -> None:
        pass


@pytest.mark.parametrize("kind", EVERY_CREATE)
def test_every_create_operator_fails_without_retries_after_an_uncertain_create(camb_connection, kind):
    import airflow_provider_camb.operators.dubbing as dubbing
    import airflow_provider_camb.operators.text_to_sound as text_to_sound
    import airflow_provider_camb.operators.text_to_speech as text_to_speech
    import airflow_provider_camb.operators.text_to_voice as text_to_voice
    from airflow_provider_camb.exceptions import CambUncertainCreateError

    name, fields, look_for = EVERY_CREATE[kind]
    modules = (text_to_voice, text_to_speech, dubbing, text_to_sound)
    operator_class = next(getattr(module, name) for module in modules if hasattr(module, name))
    camb_connection.inject("http_500", endpoint="create", act=True)
    operator = operator_class(task_id="create", project_name=PROJECT, **fields)
    with pytest.raises(CambUncertainCreateError) as error:
        operator.execute({"ti": FirstTry()})
    assert f"in project {PROJECT!r} {look_for}" in str(error.value)
    assert "secret" not in str(error.value)  # a media link may be a bearer link: its host only
    assert f"retry_uncertain_create=True on {name}" in str(error.value)
    assert camb_connection.task_count() == 1


def test_a_404_after_the_read_after_create_window_is_final(camb_connection):
    from airflow_provider_camb.exceptions import CambNotFoundError, CambNotReadableYetError
    from airflow_provider_camb.hooks.camb import CambHook

    task_id = camb_connection.add_task()
    hook = CambHook()
    hook.note_created(task_id, time.time() - 31)
    camb_connection.inject("not_found", endpoint="status")
    with pytest.raises(CambNotFoundError) as error:
        hook.get_task_status("text-to-voice", task_id)
    assert not isinstance(error.value, CambNotReadableYetError)
    assert camb_connection.request_count("status") == 1  # not retried


def test_a_trigger_row_keeps_the_creation_time_and_rows_without_it_still_load(camb_connection):
    from airflow_provider_camb.triggers.camb_task import CambTaskTrigger
    from airflow_provider_camb.triggers.text_to_voice import TextToVoiceTrigger

    created_at = time.time()
    classpath, kwargs = CambTaskTrigger("t-1", kind="tts", created_at=created_at).serialize()
    assert kwargs["created_at"] == created_at
    assert CambTaskTrigger(**json.loads(json.dumps(kwargs))).serialize() == (classpath, kwargs)
    older = {key: value for key, value in kwargs.items() if key != "created_at"}  # a row of an earlier release
    assert CambTaskTrigger(**older).created_at is None
    _, kwargs = TextToVoiceTrigger("t-1", created_at=created_at).serialize()
    assert TextToVoiceTrigger(**kwargs).created_at == created_at


def test_waits_refused_alike_share_one_read_of_the_connection():
    import asyncio

    from airflow_provider_camb.hooks._rate_limit import key_state
    from airflow_provider_camb.settings import CambSettings

    reads: list[str] = []

    async def read() -> CambSettings:
        reads.append(f"key-{len(reads)}")
        await asyncio.sleep(0.01)
        return CambSettings("camb_default", "http://127.0.0.1:1", reads[-1])

    async def scenario() -> list[str]:
        refused = (await key_state("camb_default", read)).settings.api_key
        states = await asyncio.gather(*(key_state("camb_default", read, refused_key=refused) for _ in range(20)))
        late = await key_state("camb_default", read, refused_key=refused)  # another wait already read it again
        return [state.settings.api_key for state in (*states, late)]

    assert asyncio.run(scenario()) == ["key-1"] * 21
    assert reads == ["key-0", "key-1"]


# --- the stand-in's switches these tests use -----------------------------------------------------------------


def test_the_stand_in_can_create_a_task_and_then_spoil_the_reply(camb_standin):
    import requests

    camb_standin.inject("http_500", endpoint="create", act=True)
    reply = requests.post(
        f"{camb_standin.base_url}/text-to-voice",
        json={"text": TEXT, "voice_description": DESCRIPTION},
        headers={"x-api-key": camb_standin.api_key},
        timeout=10,
    )
    assert reply.status_code == 500
    assert camb_standin.task_count() == 1  # CAMB did the work; the client never learns the id


def test_the_stand_in_keeps_a_task_pending_for_its_first_reads(camb_connection):
    from airflow_provider_camb.hooks.camb import CambHook

    camb_connection.configure(pending_reads=2)
    task_id = camb_connection.add_task()
    hook = CambHook()
    assert [hook.get_task_status("text-to-voice", task_id).status for _ in range(3)] == [
        "PENDING",
        "PENDING",
        "SUCCESS",
    ]


def test_the_stand_in_refuses_the_old_key_after_a_rotation_also_over_http(camb_standin):
    import requests

    from airflow_provider_camb.testing import CambStandInClient

    old = camb_standin.api_key
    new = CambStandInClient(camb_standin.base_url).rotate_key()
    assert new == camb_standin.api_key != old

    def status(key: str) -> int:
        url = f"{camb_standin.base_url}/source-languages"
        return requests.get(url, headers={"x-api-key": key}, timeout=10).status_code

    assert (status(old), status(new)) == (401, 200)
    assert CambStandInClient(camb_standin.base_url).task_count() == 0
