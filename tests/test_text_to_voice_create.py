"""TextToVoiceOperator over real HTTP to the stand-in: input checks, the create, waiting, and whole DAG runs.

Input and error checks call ``operator.execute()`` directly with a minimal context (fast); deferral and
Airflow's retry handling run real DAGs with ``dag.test()``, and the whole flow (design -> download -> keep
-> speak) runs the example DAG users copy, ``example_camb_design_keep_speak``, waiting on the worker.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, ObjectStoragePath

from airflow_provider_camb.exceptions import (
    CambAuthError,
    CambInputError,
    CambPaymentRequiredError,
    CambTaskFailedError,
    CambUncertainCreateError,
    CambValidationError,
    CambWaitTimeoutError,
)
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.kinds import TEXT_TO_VOICE
from airflow_provider_camb.operators.text_to_voice import TextToVoiceOperator, TextToVoiceResultOperator
from tests.airflow_harness import HAS_TASK_STATE_STORE
from tests.shared import (
    DESCRIPTION,
    EXAMPLES,
    FIRST_VOICE_ID,
    TEXT,
    assert_deferred,
    context,
    example_source,
    ids,
    logged,
    pending_after_first_check,
    run_id_of,
    sha256_of,
    waited_in_the_triggerer,
    wav_seconds,
)

# --- TextToVoiceOperator: input is checked before anything is sent -------------------------------

BAD_CREATE_INPUT = {
    "empty text": ({"text": ""}, "text must not be empty"),
    "whitespace-only text": ({"text": " \n\t "}, "text must not be empty"),
    "text is not a string": ({"text": 42}, "text must be a string"),
    "text is None": ({"text": None}, "text must be a string"),
    "very large text": ({"text": "x" * 20_000}, "at most 10000"),
    "short description": ({"voice_description": "A calm voice."}, "at least 100 characters and 18 words"),
    "long but few words": ({"voice_description": "calm " + "x" * 150}, "at least 100 characters and 18 words"),
    "description is not a string": ({"voice_description": ["a", "list"]}, "voice_description must be a string"),
    "very large description": ({"voice_description": "word " * 5_000}, "at most 10000"),
    "empty project name": ({"project_name": "  "}, "project_name must not be empty"),
    "folder id not a number": ({"folder_id": "twelve"}, "folder_id must be a whole number"),
}


@pytest.mark.parametrize(("options", "message"), BAD_CREATE_INPUT.values(), ids=BAD_CREATE_INPUT)
def test_bad_create_input_is_refused_before_any_request(camb_connection, options, message):
    arguments = {"text": TEXT, "voice_description": DESCRIPTION, **options}
    operator = TextToVoiceOperator(task_id="create", **arguments)
    with pytest.raises(CambInputError, match=message) as error:
        operator.execute(context())
    assert isinstance(error.value, AirflowFailException)  # retrying cannot fix bad input
    assert camb_connection.request_count("create") == 0
    assert camb_connection.request_count() == 0


@pytest.mark.parametrize("setting", [{"poll_interval": 0}, {"timeout": -1}, {"timeout": "soon"}])
def test_nonsense_wait_settings_are_refused_when_the_dag_is_written(setting):
    with pytest.raises(CambInputError, match="positive number of seconds"):
        TextToVoiceOperator(task_id="create", text=TEXT, voice_description=DESCRIPTION, **setting)


def test_create_returns_the_task_id_and_sends_the_fields(camb_connection):
    ctx = context()
    operator = TextToVoiceOperator(
        task_id="create",
        text=TEXT,
        voice_description=DESCRIPTION,
        project_name="demo",
        project_description="a demo project",
        folder_id="12",  # what a template renders
    )
    camb_task_id = operator.execute(ctx)
    assert ctx["ti"].xcoms == {"task_id": camb_task_id}
    (sent,) = camb_connection.requests("create")
    assert sent.json == {
        "text": TEXT,
        "voice_description": DESCRIPTION,
        "project_name": "demo",
        "project_description": "a demo project",
        "folder_id": 12,
    }
    assert camb_connection.request_count("status") == 0  # no waiting unless asked
    assert CambHook().get_task_status("text-to-voice", camb_task_id).status == "PENDING"  # the task CAMB made


def test_check_description_false_sends_it_and_camb_answers_422(camb_connection):
    operator = TextToVoiceOperator(
        task_id="create", text=TEXT, voice_description="A calm voice.", check_description=False
    )
    with pytest.raises(CambValidationError, match="voice_description"):
        operator.execute(context())
    assert camb_connection.request_count("create") == 1


def test_a_wrong_key_is_an_auth_error(camb_standin, monkeypatch):
    conn = {"conn_type": "camb", "host": camb_standin.base_url, "password": "wrong-key-0123456789"}
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_DEFAULT", json.dumps(conn))
    with pytest.raises(CambAuthError, match="camb_default") as error:
        TextToVoiceOperator(task_id="create", text=TEXT, voice_description=DESCRIPTION).execute(context())
    assert "wrong-key-0123456789" not in str(error.value)
    assert camb_standin.requests("create")[0].status == 401


def test_a_create_that_failed_on_the_server_is_not_sent_again(camb_connection):
    camb_connection.inject("http_500", endpoint="create", times=5)
    with pytest.raises(CambUncertainCreateError, match="HTTP 500"):  # fails without retries
        TextToVoiceOperator(task_id="create", text=TEXT, voice_description=DESCRIPTION).execute(context())
    assert camb_connection.request_count("create") == 1  # it may have started a paid task: never blindly repeated


def test_a_402_fails_without_retries(camb_connection, tmp_path):
    camb_connection.inject("payment_required", endpoint="create", times=3)
    with pytest.raises(CambPaymentRequiredError, match="Add credits") as error:
        TextToVoiceOperator(task_id="create", text=TEXT, voice_description=DESCRIPTION).execute(context())
    assert isinstance(error.value, AirflowFailException)
    assert [r.status for r in camb_connection.requests("create")] == [402]  # not retried
    camb_connection.inject("payment_required", endpoint="result", times=3)
    with pytest.raises(CambPaymentRequiredError, match="HTTP 402: Not enough credits"):
        TextToVoiceResultOperator(task_id="download", run_id=1000, destination=str(tmp_path)).execute(context())
    assert [r.status for r in camb_connection.requests("result")] == [402]  # not retried either
    assert list(tmp_path.iterdir()) == []


# --- TextToVoiceOperator: waiting from the worker ----------------------------------------------


def waiting_operator(**options: Any) -> TextToVoiceOperator:
    return TextToVoiceOperator(
        task_id="create",
        text=TEXT,
        voice_description=DESCRIPTION,
        wait_for_completion=True,
        deferrable=False,
        poll_interval=0.1,
        **options,
    )


def test_waiting_in_the_worker_returns_the_run_id(camb_connection):
    ctx = context()
    run_id = waiting_operator().execute(ctx)
    assert run_id == run_id_of(ctx["ti"].xcoms["task_id"])
    assert ctx["ti"].xcoms == {"task_id": ctx["ti"].xcoms["task_id"], "run_id": run_id}
    assert camb_connection.request_count("create") == 1
    assert camb_connection.request_count("status") >= 2  # PENDING for 0.5 s, then SUCCESS


def test_waiting_in_the_worker_rides_out_passing_faults(camb_connection):
    camb_connection.inject("http_503", endpoint="status", times=4)  # more than one check's retries
    ctx = context()
    run_id = waiting_operator().execute(ctx)
    assert run_id == run_id_of(ctx["ti"].xcoms["task_id"])
    assert [r.status for r in camb_connection.requests("status")][:4] == [503] * 4


@pytest.mark.parametrize(("outcome", "advice"), [("ERROR", "Review the inputs"), ("TIMEOUT", "contact CAMB.AI")])
def test_waiting_in_the_worker_fails_on_error_and_timeout_statuses(camb_connection, outcome, advice):
    camb_connection.configure(outcome=outcome, exception_reason="PROCESSING_ERROR")
    with pytest.raises(CambTaskFailedError, match=advice) as error:
        waiting_operator().execute(context())
    assert not isinstance(error.value, AirflowFailException)  # Airflow's retries apply
    assert "PROCESSING_ERROR" in str(error.value)


def test_waiting_in_the_worker_fails_without_retries_on_payment_required(camb_connection):
    camb_connection.configure(outcome="PAYMENT_REQUIRED")
    with pytest.raises(CambPaymentRequiredError, match="Add credits") as error:
        waiting_operator().execute(context())
    assert isinstance(error.value, AirflowFailException)


def test_waiting_in_the_worker_stops_at_its_timeout(camb_connection):
    camb_connection.configure(pending_seconds=120)
    ctx = context()
    with pytest.raises(CambWaitTimeoutError, match="did not finish before the deadline") as error:
        waiting_operator(timeout=1).execute(ctx)
    assert isinstance(error.value, AirflowFailException)  # a retry would create a second, paid task
    assert "last status PENDING" in str(error.value)
    assert ctx["ti"].xcoms["task_id"] in str(error.value)
    assert camb_connection.request_count("create") == 1
    assert camb_connection.request_count("status") >= 2  # it checked again before the deadline


def test_a_404_moments_after_the_create_is_read_again(camb_connection):
    camb_connection.inject(
        "not_found", endpoint="status", times=2
    )  # read-after-create lag: the task is not readable yet
    ctx = context()
    assert waiting_operator().execute(ctx) == run_id_of(ctx["ti"].xcoms["task_id"])
    assert camb_connection.request_count("create") == 1
    assert [r.status for r in camb_connection.requests("status")][:3] == [404, 404, 200]


# --- the whole flow, in the example DAG users copy -------------------------------------------------

DESIGN_KEEP_SPEAK = EXAMPLES / "example_camb_design_keep_speak.py"


def run_design_keep_speak(run_dag, destination: str, *, deferrable: bool = True):
    """example_camb_design_keep_speak (design, download, keep, speak), unattended, its waits deferred or not."""
    source = example_source(DESIGN_KEEP_SPEAK, f"design_keep_speak_{next(ids)}")
    if not deferrable:  # the example's default_args wait in the triggerer
        source = source.replace('"deferrable": True', '"deferrable": False')
        assert '"deferrable": False' in source
    return run_dag.run(source, run_conf={"destination": destination, "choose": "first"})


def check_flow_outcome(result, standin) -> str:
    """Every task succeeded, the run id went everywhere, the files are real, the kept voice is the first
    preview; returns the designed voice's CAMB task id."""
    assert set(result.task_states.values()) == {"success"}
    run_id = result.xcom("design_voice")
    camb_task_id = result.xcom("design_voice", "task_id")
    assert run_id == run_id_of(camb_task_id) == result.xcom("design_voice", "run_id")
    assert {r.path_id for r in standin.requests("status", kind=TEXT_TO_VOICE.name)} == {camb_task_id}
    assert len(standin.requests("create", kind=TEXT_TO_VOICE.name)) == 1
    saved = result.xcom("download_previews")
    assert [Path(ObjectStoragePath(e["path"]).path).name for e in saved] == [
        f"camb_run_{run_id}_preview_{i}.wav" for i in range(2)
    ]
    for entry in saved:
        path = Path(ObjectStoragePath(entry["path"]).path)
        assert sha256_of(path) == entry["sha256"]
        assert wav_seconds(path) == pytest.approx(1.0, abs=0.01)
    assert result.xcom("keep_voice") == FIRST_VOICE_ID
    (sent,) = standin.requests("custom_voice")
    assert sent.json["file_sha256"] == saved[0]["sha256"]
    assert sent.query == {"run_id": str(run_id)}
    return camb_task_id


def test_the_whole_flow_waiting_in_the_worker(run_dag, camb_connection, tmp_path, capfd):
    pending_after_first_check(camb_connection)  # the first check sees PENDING: the worker really waits
    result = run_design_keep_speak(run_dag, str(tmp_path / "voices"), deferrable=False)
    assert len(camb_connection.requests("status", kind=TEXT_TO_VOICE.name)) >= 2  # PENDING first
    camb_task_id = check_flow_outcome(result, camb_connection)
    logs = logged(capfd)
    assert not waited_in_the_triggerer(logs, camb_task_id)  # it never deferred
    for request in camb_connection.requests("preview"):
        assert request.query["token"] not in logs
    assert camb_connection.api_key not in logs


def test_a_task_already_done_is_not_deferred(run_dag, camb_connection, tmp_path, capfd):
    camb_connection.configure(pending_seconds=-1)  # terminal as soon as it is created
    result = run_design_keep_speak(run_dag, str(tmp_path))
    assert len(camb_connection.requests("status", kind=TEXT_TO_VOICE.name)) == 1  # the one check; no trigger ran
    camb_task_id = check_flow_outcome(result, camb_connection)
    assert not waited_in_the_triggerer(logged(capfd), camb_task_id)


CREATE_DAG = """
import pendulum
from datetime import timedelta
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_camb.operators.text_to_voice import TextToVoiceOperator

with DAG("{dag_id}", start_date=pendulum.datetime(2024, 1, 1), schedule=None, params={{"text": {text!r}}}) as dag:
    TextToVoiceOperator(
        task_id="create",
        text="{{{{ params.text }}}}",
        voice_description={description!r},
        wait_for_completion=True,
        deferrable=True,
        poll_interval=0.3,
        retries={retries},
        retry_delay=timedelta(seconds=0),
        {options}
    )
"""


def run_create(run_dag, *, text: str = TEXT, retries: int = 0, options: str = ""):
    dag_id = f"operators_create_{next(ids)}"
    source = CREATE_DAG.format(dag_id=dag_id, text=text, description=DESCRIPTION, retries=retries, options=options)
    return run_dag.run(source)


def test_a_template_that_renders_blank_text_fails_without_retries_or_requests(run_dag, camb_connection, capfd):
    result = run_create(run_dag, text="   ", retries=2)
    assert result.task_states == {"create": "failed"}
    assert result.tries["create"] == 1
    assert "text must not be empty" in logged(capfd)
    assert camb_connection.request_count() == 0


def test_an_error_status_after_deferral_fails_and_is_retried(run_dag, camb_connection, capfd):
    pending_after_first_check(camb_connection)
    camb_connection.configure(outcome="ERROR", exception_reason="HARMFUL_CONTENT_DETECTED")
    result = run_create(run_dag, retries=1)
    assert result.task_states == {"create": "failed"}
    assert result.tries["create"] == 2
    created = camb_connection.request_count("create")
    logs = logged(capfd)
    if HAS_TASK_STATE_STORE:  # the retry replaces the task that ended in ERROR; resuming never created one
        assert created == 2
    else:  # before Airflow 3.3 the retry cannot know what try 1 created: it fails closed
        assert created == 1
        assert "CambUncertainCreateError" in logs
    for camb_task_id in {r.path_id for r in camb_connection.requests("status")}:  # each created task deferred
        assert camb_task_id is not None
        assert_deferred(logs, camb_task_id, "ERROR")
    assert len({r.path_id for r in camb_connection.requests("status")}) == created
    assert "CambTaskFailedError" in logs and "HARMFUL_CONTENT_DETECTED" in logs


def test_payment_required_after_deferral_fails_without_retries(run_dag, camb_connection, capfd):
    pending_after_first_check(camb_connection)
    camb_connection.configure(outcome="PAYMENT_REQUIRED")
    result = run_create(run_dag, retries=2)
    assert result.task_states == {"create": "failed"}
    assert result.tries["create"] == 1
    assert camb_connection.request_count("create") == 1
    logs = logged(capfd)
    assert_deferred(logs, camb_connection.requests("status")[0].path_id or "", "PAYMENT_REQUIRED")
    assert "Add credits" in logs


def test_our_timeout_after_deferral_fails_without_retries_and_says_so(run_dag, camb_connection, capfd):
    camb_connection.configure(pending_seconds=120)
    result = run_create(run_dag, retries=2, options="timeout=2,")
    assert result.task_states == {"create": "failed"}
    assert result.tries["create"] == 1
    assert camb_connection.request_count("create") == 1
    logs = logged(capfd)
    (waited,) = {r.path_id for r in camb_connection.requests("status")}
    assert f"task {waited!r} did not finish before the deadline (last status PENDING); " in logs  # the trigger's
    assert "CambWaitTimeoutError" in logs
