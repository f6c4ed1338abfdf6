"""Previews written to, and read from, real S3 object storage: moto's S3 server on loopback, reached through
Airflow's ``ObjectStoragePath`` with the Amazon provider and an ``aws`` connection (``camb_s3``) whose
``endpoint_url`` points at it.

- the objects are whole and their sha256 is the XCom's, whichever way the connection is named
  (``destination_conn_id`` or ``s3://conn_id@bucket/...``); no temporary object is left;
- a download cut off midway leaves no object at all (nor an unfinished multipart upload), and an older
  complete object under the final name is kept;
- ``CambCreateCustomVoiceOperator`` reads a preview from ``s3://`` (``preview_conn_id``);
- two different connections for one location are refused, and a location without any says so and uses boto's
  own credentials and endpoint (the environment), not ``aws_default``;
- the XCom ``path`` names the connection (``s3://camb_s3@bucket/...``), so a later task reads it back through it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import uuid
import wave
from typing import Any

import pytest

from airflow_provider_camb._storage import destination_folder
from airflow_provider_camb.exceptions import CambConnectionError, CambInputError
from airflow_provider_camb.operators.text_to_voice import CambCreateCustomVoiceOperator, TextToVoiceResultOperator
from tests.object_storage import ACCESS_KEY, REGION, SECRET_KEY, MotoS3
from tests.shared import DESCRIPTION, FIRST_VOICE_ID, TEXT, context, finished_run, ids

CONN_ID = "camb_s3"


@pytest.fixture
def bucket(s3_connection: MotoS3) -> str:
    """A fresh, empty bucket on moto."""
    return s3_connection.create_bucket(f"camb-{uuid.uuid4().hex[:16]}")


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as audio:
        return audio.getnframes() / audio.getframerate()


def key_of(path: str, bucket: str, conn_id: str | None = CONN_ID) -> str:
    """The object key of the XCom path ``s3://<conn_id>@<bucket>/<key>`` (``s3://<bucket>/<key>`` without one)."""
    prefix = f"s3://{conn_id}@{bucket}/" if conn_id else f"s3://{bucket}/"
    assert path.startswith(prefix), f"{path!r} does not start with {prefix!r}"
    return path.removeprefix(prefix)


# --- through real DAG runs ----------------------------------------------------------------------

FLOW_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_camb.operators.text_to_voice import (
    CambCreateCustomVoiceOperator,
    TextToVoiceOperator,
    TextToVoiceResultOperator,
)

with DAG("{dag_id}", start_date=pendulum.datetime(2024, 1, 1), schedule=None) as dag:
    create = TextToVoiceOperator(
        task_id="create",
        text={text!r},
        voice_description={description!r},
        wait_for_completion=True,
        poll_interval=0.3,
    )
    download = TextToVoiceResultOperator(task_id="download", run_id=create.output, {destination})
    CambCreateCustomVoiceOperator(
        task_id="keep", preview=1, previews=download.output, voice_name="Narrator", gender=2
    )
"""

HOW = {
    "destination_conn_id": 'destination="s3://{bucket}/voices", destination_conn_id="camb_s3"',
    "conn_id in the URI": 'destination="s3://camb_s3@{bucket}/voices"',
}


@pytest.mark.parametrize("how", HOW.values(), ids=HOW)
def test_previews_are_whole_objects_in_s3_with_the_sha256_of_the_xcom(
    run_dag, camb_connection, s3_connection, bucket, how
):
    source = FLOW_DAG.format(
        dag_id=f"object_storage_flow_{next(ids)}",
        text=TEXT,
        description=DESCRIPTION,
        destination=how.format(bucket=bucket),
    )
    result = run_dag.run(source)

    assert result.task_states == {"create": "success", "download": "success", "keep": "success"}
    run_id = result.xcom("create")
    saved = result.xcom("download")
    names = [f"voices/camb_run_{run_id}_preview_{index}.wav" for index in range(2)]
    assert [key_of(entry["path"], bucket) for entry in saved] == names
    assert s3_connection.keys(bucket) == names  # nothing else: no temporary object
    assert s3_connection.unfinished_uploads(bucket) == []
    for entry in saved:
        data = s3_connection.read(bucket, key_of(entry["path"], bucket))
        assert len(data) == entry["bytes"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert wav_seconds(data) == pytest.approx(1.0, abs=0.01)
    (sent,) = camb_connection.requests("custom_voice")  # kept from s3://, read through the same connection
    assert sent.json["file_sha256"] == saved[1]["sha256"]
    assert sent.json["file_name"] == f"camb_run_{run_id}_preview_1.wav"


# --- the operators directly ---------------------------------------------------------------------


def download(run_id: int, destination: str, **options: Any) -> list[dict[str, Any]]:
    operator = TextToVoiceResultOperator(task_id="download", run_id=run_id, destination=destination, **options)
    return operator.execute(context())


def test_a_preview_cut_off_midway_leaves_no_object_in_s3(camb_connection, s3_connection, bucket):
    run_id = finished_run(camb_connection)
    camb_connection.inject(
        "truncate", endpoint="preview", times=3
    )  # every attempt of the first preview (1 + 2 retries)
    with pytest.raises(CambConnectionError, match="cut off"):
        download(run_id, f"s3://{bucket}/voices", destination_conn_id=CONN_ID)
    assert camb_connection.request_count("preview") == 3  # each attempt got halfway
    assert s3_connection.keys(bucket) == []
    assert s3_connection.unfinished_uploads(bucket) == []


def test_a_preview_cut_off_once_is_fetched_again_and_stored_whole(camb_connection, s3_connection, bucket):
    run_id = finished_run(camb_connection)
    camb_connection.inject("truncate", endpoint="preview", times=1)
    saved = download(run_id, f"s3://{bucket}/voices", destination_conn_id=CONN_ID)
    assert camb_connection.request_count("preview") == 3  # the first preview twice, the second once
    assert s3_connection.keys(bucket) == [key_of(entry["path"], bucket) for entry in saved]
    for entry in saved:
        data = s3_connection.read(bucket, key_of(entry["path"], bucket))
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert wav_seconds(data) == pytest.approx(1.0, abs=0.01)


def test_a_failed_rerun_keeps_the_complete_object(camb_connection, s3_connection, bucket):
    run_id = finished_run(camb_connection)
    first = download(run_id, f"s3://{bucket}/voices", destination_conn_id=CONN_ID)
    camb_connection.inject("truncate", endpoint="preview", times=3)
    with pytest.raises(CambConnectionError):
        download(run_id, f"s3://{bucket}/voices", destination_conn_id=CONN_ID)
    assert s3_connection.keys(bucket) == [key_of(entry["path"], bucket) for entry in first]
    for entry in first:
        assert s3_connection.sha256(bucket, key_of(entry["path"], bucket)) == entry["sha256"]


def test_a_custom_voice_is_made_from_a_preview_in_s3_with_preview_conn_id(camb_connection, s3_connection, bucket):
    audio = b"RIFF" + bytes(range(256)) * 64
    s3_connection.client().put_object(Bucket=bucket, Key="kept/voice.wav", Body=audio)
    voice_id = CambCreateCustomVoiceOperator(
        task_id="keep",
        preview=f"s3://{bucket}/kept/voice.wav",
        preview_conn_id=CONN_ID,
        voice_name="Narrator",
        gender=2,
    ).execute(context())
    assert voice_id == FIRST_VOICE_ID
    (sent,) = camb_connection.requests("custom_voice")
    assert sent.json["file_sha256"] == hashlib.sha256(audio).hexdigest()
    assert sent.json["file_name"] == "voice.wav"


def test_a_missing_preview_in_s3_is_refused_before_any_request(camb_connection, s3_connection, bucket):
    with pytest.raises(CambInputError, match="does not exist"):
        CambCreateCustomVoiceOperator(
            task_id="keep", preview=f"s3://{bucket}/missing.wav", preview_conn_id=CONN_ID, voice_name="N", gender=2
        ).execute(context())
    assert camb_connection.request_count() == 0


def test_two_different_connections_for_one_destination_are_refused_before_any_request(
    camb_connection, s3_connection, bucket
):
    with pytest.raises(CambInputError, match="names the connection 'other' but destination_conn_id is 'camb_s3'"):
        download(1, f"s3://other@{bucket}/voices", destination_conn_id=CONN_ID)
    assert camb_connection.request_count() == 0


def test_the_same_connection_named_twice_is_fine(camb_connection, s3_connection, bucket):
    run_id = finished_run(camb_connection)
    saved = download(run_id, f"s3://{CONN_ID}@{bucket}/same", destination_conn_id=CONN_ID)
    assert s3_connection.keys(bucket) == sorted(key_of(entry["path"], bucket) for entry in saved)


def test_without_a_connection_boto_s_own_credentials_and_endpoint_apply_not_aws_default(
    camb_connection, s3_connection, bucket, camb_standin_factory, monkeypatch, caplog
):
    decoy = camb_standin_factory()  # an HTTP server on loopback that records whatever reaches it
    aws_default = {"conn_type": "aws", "login": "decoy", "password": "decoy", "extra": {"endpoint_url": decoy.base_url}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(aws_default))
    for name, value in {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": s3_connection.endpoint_url,  # boto's own endpoint setting: moto
    }.items():
        monkeypatch.setenv(name, value)
    run_id = finished_run(camb_connection)
    with caplog.at_level(logging.WARNING, logger="airflow_provider_camb._storage"):
        saved = download(run_id, f"s3://{bucket}/boto")
    names = [f"boto/camb_run_{run_id}_preview_{index}.wav" for index in range(2)]
    assert [key_of(entry["path"], bucket, conn_id=None) for entry in saved] == names
    assert s3_connection.keys(bucket) == names
    for entry in saved:
        assert s3_connection.sha256(bucket, key_of(entry["path"], bucket, conn_id=None)) == entry["sha256"]
    assert decoy.request_count() == 0  # aws_default's endpoint was never asked
    assert "names no Airflow connection" in caplog.text


def test_an_object_storage_destination_without_a_connection_says_which_credentials_apply(
    monkeypatch, caplog, s3_connection
):
    # Dummy credentials from the environment: the filesystem is built without asking any other host.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "dummy")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "dummy")
    with caplog.at_level(logging.WARNING, logger="airflow_provider_camb._storage"):
        destination_folder("s3://some-bucket/voices")
    assert "names no Airflow connection" in caplog.text
    assert "destination_conn_id" in caplog.text and "s3://CONN_ID@some-bucket/voices" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="airflow_provider_camb._storage"):
        destination_folder("s3://some-bucket/voices", conn_id=CONN_ID)
    assert caplog.text == ""
