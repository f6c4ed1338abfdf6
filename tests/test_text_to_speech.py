"""Text to speech (and translated text to speech) over real HTTP to the stand-in: create, wait, save the speech."""

from __future__ import annotations

import functools
import json
import wave
from pathlib import Path

import pytest

from airflow_provider_camb.api import ApiRequest
from airflow_provider_camb.exceptions import (
    CambApiError,
    CambInputError,
    CambLinkRefusedError,
    CambResponseError,
    CambTaskFailedError,
    CambValidationError,
)
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.operators.text_to_speech import (
    CambTextToSpeechOperator,
    CambTextToSpeechResultOperator,
    CambTranslatedTextToSpeechOperator,
)
from tests.airflow_harness import asset_events
from tests.shared import context, finished_run, result_of, run_id_of, sha256_of

TEXT = "Good morning. Your train departs from platform four."


speak = functools.partial(CambTextToSpeechOperator, task_id="speak", text=TEXT, voice_id=5000, language=1)


def finished(standin, kind: str = "tts") -> int:
    """A SUCCESS run of ``kind`` (default: text to speech) on the stand-in; its run id."""
    return finished_run(standin, kind)


save = functools.partial(result_of, CambTextToSpeechResultOperator)


# --- create: input is checked before anything is sent ---------------------------------------------

BAD_INPUT = {
    "empty text": ({"text": ""}, "text must not be empty"),
    "blank text": ({"text": " \n "}, "text must not be empty"),
    "over-long text": ({"text": "x" * 10_001}, "at most 10000"),
    "text not a string": ({"text": 7}, "text must be a string"),
    "voice id a word": ({"voice_id": "narrator"}, "voice_id must be a whole number"),
    "voice id a float": ({"voice_id": 1.5}, "voice_id must be a whole number"),
    "voice id a bool": ({"voice_id": True}, "voice_id must be a whole number"),
    "voice id None": ({"voice_id": None}, "voice_id must be a whole number"),
    "language a locale": ({"language": "en-us"}, "language must be a whole number"),
    "gender a word": ({"gender": "female"}, "gender must be a whole number"),
    "age negative text": ({"age": "-3"}, "age must be a whole number"),
    "folder a word": ({"folder_id": "inbox"}, "folder_id must be a whole number"),
}


@pytest.mark.parametrize(("options", "message"), BAD_INPUT.values(), ids=BAD_INPUT)
def test_bad_input_is_refused_before_any_request(camb_connection, options, message):
    with pytest.raises(CambInputError, match=message):
        speak(**options).execute(context())
    assert camb_connection.requests() == []


def test_create_sends_the_fields_as_integers_and_returns_the_task_id(camb_connection):
    ctx = context()
    task_id = speak(voice_id="5001", language="31", gender="2", age=40, folder_id="3", project_name="P").execute(ctx)
    (sent,) = camb_connection.requests("create")
    assert sent.path == "/tts" and sent.kind == "tts"
    assert sent.json == {
        "text": TEXT,
        "voice_id": 5001,
        "language": 31,
        "gender": 2,
        "age": 40,
        "folder_id": 3,
        "project_name": "P",
    }
    assert ctx["ti"].xcoms == {"task_id": task_id}


def test_waiting_in_the_worker_returns_the_run_id(camb_connection):
    ctx = context()
    run_id = speak(wait_for_completion=True, deferrable=False, poll_interval=0.1).execute(ctx)
    assert run_id == run_id_of(ctx["ti"].xcoms["task_id"], "tts")
    assert {r.path for r in camb_connection.requests("status")} == {f"/tts/{ctx['ti'].xcoms['task_id']}"}


def test_an_error_status_names_the_text_to_speech_task_and_its_inputs(camb_connection):
    camb_connection.configure(outcome="ERROR")
    with pytest.raises(CambTaskFailedError, match=r"text-to-speech task .*\(text, voice_id and language\)"):
        speak(wait_for_completion=True, deferrable=False, poll_interval=0.1).execute(context())


def test_the_stand_in_answers_a_body_our_checks_would_refuse_with_a_422(camb_connection):
    request = ApiRequest("POST", "/tts", "creating a text-to-speech task", json={"text": TEXT, "voice_id": "x"})
    with pytest.raises(CambValidationError, match="voice_id: Input should be a valid integer; language: Field"):
        CambHook()._send(request)


# --- the result: RAW_BYTES from the API, FILE_URL from the storage host ---------------------------


def test_raw_bytes_speech_is_saved_under_the_run_name_with_the_content_types_extension(camb_connection, tmp_path):
    run_id = finished(camb_connection)
    saved = save(run_id, tmp_path)
    path = Path(saved["path"])
    assert path == tmp_path / f"camb_speech_run_{run_id}.wav"
    assert saved["bytes"] == path.stat().st_size
    assert saved["sha256"] == sha256_of(path)
    assert saved["content_type"] == "audio/wav"
    with wave.open(str(path)) as audio:
        assert audio.getnframes() == 22050
    (request,) = camb_connection.requests("result")
    assert request.path == f"/tts-result/{run_id}"
    assert request.query == {"output_type": "RAW_BYTES"}
    assert request.headers["x-api-key"] == camb_connection.api_key
    assert list(tmp_path.iterdir()) == [path]


def test_file_url_speech_is_fetched_without_the_key_and_the_link_stays_out_of_xcom_and_logs(
    camb_connection, tmp_path, capfd
):
    run_id = finished(camb_connection)
    saved = save(run_id, tmp_path, output_type="FILE_URL")
    (link,) = camb_connection.requests("media")
    assert link.server == "preview"
    assert "x-api-key" not in link.headers
    assert camb_connection.api_key not in json.dumps(link.headers)
    output = capfd.readouterr()
    assert link.query["token"] not in output.out + output.err + json.dumps(saved)
    assert "localhost" in output.out + output.err  # the host, and only the host
    assert Path(saved["path"]).name == f"camb_speech_run_{run_id}.wav"


def test_an_expired_link_says_so_and_does_not_blame_the_key(camb_connection, tmp_path):
    run_id = finished(camb_connection)
    camb_connection.inject("unauthorized", endpoint="media")
    with pytest.raises(CambLinkRefusedError, match="expired or was refused") as caught:
        save(run_id, tmp_path, output_type="FILE_URL")
    assert "API key is never sent" in str(caught.value)
    assert "Check the API key" not in str(caught.value)
    assert "token=" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_json_answer_to_raw_bytes_is_not_saved_as_audio(camb_connection, tmp_path):
    run_id = finished(camb_connection)
    camb_connection.inject("unknown_status", endpoint="result")  # a 200 JSON body where audio belongs
    expected = f"CAMB answered JSON instead of audio while fetching the result of CAMB text-to-speech run {run_id}"
    with pytest.raises(CambResponseError, match=expected):
        save(run_id, tmp_path)
    assert camb_connection.request_count("result") == 1
    assert list(tmp_path.iterdir()) == []


def test_a_run_of_another_kind_is_refused_by_camb(camb_connection, tmp_path):
    run_id = finished(camb_connection, "text-to-voice")
    message = (
        f"CAMB replied HTTP 400 while fetching the result of CAMB text-to-speech run {run_id}: Run {run_id} is not"
    )
    with pytest.raises(CambApiError, match=message):
        save(run_id, tmp_path)
    assert camb_connection.request_count("result") == 1  # permanent: not retried
    assert list(tmp_path.iterdir()) == []


# --- translated text to speech: same result endpoint ------------------------------------------------


def test_translated_speech_is_created_checked_and_saved_by_the_same_result_operator(camb_connection, tmp_path):
    with pytest.raises(CambInputError, match="target_language must be a whole number"):
        CambTranslatedTextToSpeechOperator(
            task_id="t", text=TEXT, voice_id=1, source_language=1, target_language="fr"
        ).execute(context())
    assert camb_connection.requests() == []
    run_id = CambTranslatedTextToSpeechOperator(
        task_id="t",
        text=TEXT,
        voice_id="7",
        source_language=1,
        target_language="76",
        wait_for_completion=True,
        deferrable=False,
        poll_interval=0.1,
    ).execute(context())
    (sent,) = camb_connection.requests("create")
    assert sent.path == "/translated-tts"
    assert sent.json == {"text": TEXT, "voice_id": 7, "source_language": 1, "target_language": 76}
    assert {r.path.split("/")[1] for r in camb_connection.requests("status")} == {"translated-tts"}
    saved = save(run_id, tmp_path)
    assert Path(saved["path"]).name == f"camb_speech_run_{run_id}.wav"


# --- dag.test(): deferred create, then the result, with Airflow's own machinery -----------------------


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "in the worker"])
def test_speak_and_save_in_a_dag(create_and_save, camb_connection, tmp_path, deferrable):
    speech = f"text={TEXT!r}, voice_id='{{{{ 5000 + 1 }}}}', language=1"
    result, run_id, _ = create_and_save(CambTextToSpeechOperator, CambTextToSpeechResultOperator, speech, deferrable)
    saved = result.xcom("save")
    assert Path(saved["path"]) == tmp_path / f"camb_speech_run_{run_id}.wav"
    assert sha256_of(Path(saved["path"])) == saved["sha256"]
    assert camb_connection.requests("create")[0].json["voice_id"] == 5001
    assert camb_connection.request_count("create") == 1
    file = {"path": saved["path"], "sha256": saved["sha256"], "bytes": saved["bytes"]}
    ((asset, task_id, extra),) = asset_events(result.dag_id, result.run_id)  # a dataset event on Airflow 2
    assert (asset, task_id) == (f"camb_{result.dag_id}", "save")
    assert extra == {"camb_kind": "tts", "camb_run_id": run_id, "files": [file]}
