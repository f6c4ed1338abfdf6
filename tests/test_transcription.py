"""Transcription over real HTTP to the stand-in: the media uploaded (local or object storage) or named by URL,
checked before any request; create, wait (worker or triggerer), save the transcript whole."""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from pathlib import Path

import pytest

from airflow_provider_camb.exceptions import CambConnectionError, CambInputError
from airflow_provider_camb.operators.transcription import CambTranscriptionOperator, CambTranscriptionResultOperator
from tests.shared import MEDIA, context, finished_run, result_of, sha256_of, with_media

URL = "https://media.example/talks/keynote.mp3?signature=s3cr3t"


transcribe = functools.partial(CambTranscriptionOperator, task_id="transcribe", language="en-us")


save = functools.partial(result_of, CambTranscriptionResultOperator)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "Give media_file .* or media_url, exactly one of them"),
        ({"media_url": URL, "media_file": "MEDIA"}, "exactly one of them"),
        ({"media_url": URL, "language": "English"}, "language must be a CAMB language id"),
        ({"media_url": "file:///etc/passwd"}, "must be a public http"),
        ({"media_url": URL, "folder_id": 0}, "folder_id must be a whole number from 1"),
        ({"media_file": "missing.wav"}, "does not exist or is not a file"),
        ({"media_file": "MEDIA", "max_bytes": 100}, f"is {len(MEDIA)} bytes; max_bytes allows 100"),
        ({"media_file": "MEDIA", "max_bytes": -1}, "max_bytes must be a whole number"),
    ],
)
def test_bad_transcription_input_is_refused_before_any_request(camb_connection, media, options, message):
    with pytest.raises(CambInputError, match=message):
        transcribe(**with_media(options, media)).execute(context())
    assert camb_connection.request_count() == 0


def test_a_local_file_is_uploaded_whole_as_the_form_file_part(camb_connection, media):
    transcribe(media_file=str(media), language="auto", project_name="Talks").execute(context())
    (sent,) = camb_connection.requests("create")
    assert sent.path == "/transcribe"
    assert sent.json == {
        "language": "auto",
        "project_name": "Talks",
        "file_name": "media.wav",
        "file_bytes": len(MEDIA),
        "file_sha256": hashlib.sha256(MEDIA).hexdigest(),
    }


def test_a_media_url_is_sent_as_a_form_field_without_a_file(camb_connection):
    transcribe(media_url=URL, language=1).execute(context())
    (sent,) = camb_connection.requests("create")
    assert sent.json == {"language": "1", "media_url": URL}


def test_a_file_on_object_storage_is_read_through_its_connection(camb_connection, s3_connection):
    bucket = s3_connection.create_bucket(f"camb-{uuid.uuid4().hex[:16]}")
    s3_connection.client().put_object(Bucket=bucket, Key="in/keynote.wav", Body=MEDIA)
    with pytest.raises(CambInputError, match="does not exist or is not a file"):
        transcribe(media_file=f"s3://{bucket}/in/other.wav", media_conn_id="camb_s3").execute(context())
    assert camb_connection.request_count() == 0
    transcribe(media_file=f"s3://{bucket}/in/keynote.wav", media_conn_id="camb_s3").execute(context())
    (sent,) = camb_connection.requests("create")
    assert (sent.json["file_name"], sent.json["file_sha256"]) == ("keynote.wav", hashlib.sha256(MEDIA).hexdigest())


def test_a_result_cut_off_on_every_try_leaves_no_file(camb_connection, tmp_path):
    run_id = finished_run(camb_connection, "transcribe", language="en-us")
    camb_connection.inject("truncate", endpoint="result", times=3)  # every try (1 + 2 retries)
    with pytest.raises(CambConnectionError, match="fetching the result of CAMB transcription run"):
        save(run_id, tmp_path)
    assert camb_connection.request_count("result") == 3
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "in the worker"])
def test_transcribe_and_save_in_a_dag(create_and_save, camb_connection, media, tmp_path, deferrable):
    transcription = f"media_file='{{{{ params.media }}}}', language='en-us', params={{'media': {str(media)!r}}}"
    result, run_id, _ = create_and_save(
        CambTranscriptionOperator, CambTranscriptionResultOperator, transcription, deferrable
    )
    (sent,) = camb_connection.requests("create")
    assert sent.json["file_sha256"] == hashlib.sha256(MEDIA).hexdigest()  # templated path, whole file
    saved = result.xcom("save")
    path = tmp_path / f"camb_transcript_run_{run_id}.json"
    assert Path(saved["path"]) == path and sha256_of(path) == saved["sha256"]
    assert json.loads(path.read_text()) == {
        "text": "Hello.",
        "segments": [{"start": 0.0, "end": 1.0, "text": "Hello.", "speaker": "SPEAKER_0"}],
    }
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
