"""TextToVoiceResultOperator and CambCreateCustomVoiceOperator over real HTTP to the stand-in.

The previews are saved whole or not at all, under stable names, fetched without the API key; a kept
voice is exactly the chosen file. Each check calls ``operator.execute()`` with a minimal context.
"""

from __future__ import annotations

import hashlib
import json
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_camb._storage import media_extension
from airflow_provider_camb.exceptions import (
    CambApiError,
    CambAuthError,
    CambConnectionError,
    CambInputError,
    CambNotFoundError,
    CambServerError,
)
from airflow_provider_camb.operators.text_to_voice import CambCreateCustomVoiceOperator, TextToVoiceResultOperator
from tests.shared import FIRST_VOICE_ID, context, finished_run, memory_folder, sha256_of, wav_seconds

# --- TextToVoiceResultOperator -----------------------------------------------------------------


def download(run_id: Any, destination: Any) -> list[dict[str, Any]]:
    return TextToVoiceResultOperator(task_id="download", run_id=run_id, destination=destination).execute(context())


def test_previews_are_saved_as_wav_files_with_stable_names(camb_connection, tmp_path):
    run_id = finished_run(camb_connection)
    saved = download(str(run_id), tmp_path / "voices")  # a run id rendered by a template is a string
    folder = tmp_path / "voices"
    assert [entry["path"] for entry in saved] == [
        str(folder / f"camb_run_{run_id}_preview_{index}.wav") for index in range(2)
    ]
    for entry in saved:
        path = Path(entry["path"])
        assert set(entry) == {"path", "bytes", "sha256", "content_type"}
        assert entry["bytes"] == path.stat().st_size
        assert entry["sha256"] == sha256_of(path)
        assert entry["content_type"] == "audio/wav"
        assert wav_seconds(path) == pytest.approx(1.0, abs=0.01)
    assert sorted(p.name for p in folder.iterdir()) == [Path(e["path"]).name for e in saved]  # no temp files
    assert "http" not in json.dumps(saved) and "token" not in json.dumps(saved)


def test_a_file_uri_destination_works_too(camb_connection, tmp_path):
    run_id = finished_run(camb_connection)
    saved = download(run_id, (tmp_path / "uri").as_uri())
    assert [entry["path"] for entry in saved] == [
        f"{(tmp_path / 'uri').as_uri()}/camb_run_{run_id}_preview_{index}.wav" for index in range(2)
    ]
    for entry in saved:
        path = Path(ObjectStoragePath(entry["path"]).path)
        assert entry["sha256"] == sha256_of(path)
        assert wav_seconds(path) == pytest.approx(1.0, abs=0.01)


def test_an_object_storage_destination_gets_whole_objects_and_no_temp_objects(camb_connection):
    run_id = finished_run(camb_connection)
    folder = memory_folder()
    saved = download(run_id, folder)
    assert len(saved) == 2
    stored = ObjectStoragePath(folder)
    assert sorted(p.name for p in stored.iterdir()) == [f"camb_run_{run_id}_preview_{i}.wav" for i in range(2)]
    for entry in saved:
        data = ObjectStoragePath(entry["path"]).read_bytes()
        assert len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"]


def test_previews_are_fetched_without_the_api_key_and_links_stay_out_of_logs(camb_connection, tmp_path, capfd):
    run_id = finished_run(camb_connection)
    download(run_id, tmp_path)
    (result,) = camb_connection.requests("result")
    assert result.headers.get("x-api-key") == camb_connection.api_key
    previews = camb_connection.requests("preview")
    assert len(previews) == 2
    for request in previews:
        assert request.server == "preview"  # another host and port than the API
        assert "x-api-key" not in request.headers
        assert camb_connection.api_key not in json.dumps(request.headers)
    output = capfd.readouterr()
    logs = output.out + output.err
    for request in previews:
        assert request.query["token"] not in logs
    assert camb_connection.api_key not in logs


def test_a_cut_off_preview_leaves_no_file_under_its_name_nor_a_temp_file(camb_connection, tmp_path):
    run_id = finished_run(camb_connection)
    camb_connection.inject("truncate", endpoint="preview", times=3)  # each try of the first preview (1 + 2 retries)
    with pytest.raises(CambConnectionError, match="localhost"):
        download(run_id, tmp_path)
    assert camb_connection.request_count("preview") == 3
    assert list(tmp_path.iterdir()) == []


def test_a_cut_off_preview_is_fetched_again_from_the_start(camb_connection, tmp_path):
    run_id = finished_run(camb_connection)
    camb_connection.inject("truncate", endpoint="preview", times=1)
    saved = download(run_id, tmp_path)
    assert camb_connection.request_count("preview") == 3
    for entry in saved:
        assert wav_seconds(Path(entry["path"])) == pytest.approx(1.0, abs=0.01)
        assert sha256_of(Path(entry["path"])) == entry["sha256"]
    assert len(list(tmp_path.iterdir())) == 2


def test_a_failure_keeps_the_previous_complete_file(camb_connection, tmp_path):
    run_id = finished_run(camb_connection)
    first = download(run_id, tmp_path)
    camb_connection.inject("truncate", endpoint="preview", times=3)
    with pytest.raises(CambConnectionError):
        download(run_id, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(Path(e["path"]).name for e in first)
    assert sha256_of(Path(first[0]["path"])) == first[0]["sha256"]


def test_a_rerun_writes_the_same_files_again_atomically(camb_connection, tmp_path):
    run_id = finished_run(camb_connection)
    first = download(run_id, tmp_path)
    inodes = {entry["path"]: os.stat(entry["path"]).st_ino for entry in first}
    second = download(run_id, tmp_path)
    assert second == first  # same paths, sizes, hashes, types
    assert len(list(tmp_path.iterdir())) == 2
    for entry in second:
        assert os.stat(entry["path"]).st_ino != inodes[entry["path"]]  # replaced by a rename, not rewritten in place


def test_a_large_preview_streams_with_flat_memory(camb_connection, tmp_path):
    camb_connection.configure(preview_bytes=50_000_000, preview_count=1)
    run_id = finished_run(camb_connection)
    tracemalloc.start()
    try:
        (entry,) = download(run_id, tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert entry["bytes"] >= 49_999_000
    assert peak < 20_000_000, f"peak traced memory {peak / 1e6:.1f} MB for a 50 MB preview"
    assert sha256_of(Path(entry["path"])) == entry["sha256"]
    assert wav_seconds(Path(entry["path"])) == pytest.approx((entry["bytes"] - 44) / 44100, abs=0.01)


def test_a_result_without_previews_fails_clearly(camb_connection, tmp_path):
    camb_connection.configure(preview_count=0)
    run_id = finished_run(camb_connection)
    with pytest.raises(CambApiError, match=f"CAMB run {run_id} has no previews"):
        download(run_id, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_run_is_not_found(camb_connection, tmp_path):
    with pytest.raises(CambNotFoundError, match="987654"):
        download(987654, tmp_path)


def test_server_errors_are_retried_then_reported(camb_connection, tmp_path):
    run_id = finished_run(camb_connection)
    camb_connection.inject("http_502", endpoint="result", times=3)
    with pytest.raises(CambServerError, match="HTTP 502"):
        download(run_id, tmp_path)
    assert camb_connection.request_count("result") == 3  # 1 + 2 retries
    camb_connection.inject("http_503", endpoint="result", times=2)
    assert len(download(run_id, tmp_path)) == 2


@pytest.mark.parametrize(
    ("run_id", "destination", "message"),
    [
        ("12abc", "{tmp}", "run id must be a whole number"),
        (None, "{tmp}", "run id must be a whole number"),
        (1000, "", "destination must be a local path"),
        (1000, None, "destination must be a local path"),
        (1000, "{tmp}/a-file", "is not a folder"),
        (1000, "nosuchscheme://bucket/x", "cannot be used"),
    ],
)
def test_bad_result_input_is_refused_before_any_request(camb_connection, tmp_path, run_id, destination, message):
    (tmp_path / "a-file").write_bytes(b"x")
    if isinstance(destination, str):
        destination = destination.replace("{tmp}", str(tmp_path))
    with pytest.raises(CambInputError, match=message):
        download(run_id, destination)
    assert camb_connection.request_count() == 0


@pytest.mark.parametrize(
    ("content_type", "url", "extension"),
    [
        ("audio/wav", "https://h/x", "wav"),
        ("audio/x-wav; charset=binary", "https://h/x.mp3", "wav"),
        ("audio/mpeg", "https://h/x", "mp3"),
        ("AUDIO/FLAC", "https://h/x", "flac"),
        ("audio/ogg", "https://h/x", "ogg"),
        ("application/octet-stream", "https://h/voices/a.FLAC?sig=1", "flac"),
        (None, "https://h/voices/a.mp3?token=x#y", "mp3"),
        (None, "https://h/voices/a", "bin"),
        ("text/html", "https://h/voices/a.p/hp?x", "bin"),
        (None, "https://h/a.wav%2F..%2Fevil", "bin"),
    ],
)
def test_the_extension_comes_from_the_content_type_then_the_link(content_type, url, extension):
    assert media_extension(content_type, url) == extension


# --- CambCreateCustomVoiceOperator -------------------------------------------------------------


def keep(**options: Any) -> int:
    arguments = {"voice_name": "Narrator", "gender": 2, **options}
    return CambCreateCustomVoiceOperator(task_id="keep", **arguments).execute(context())


@pytest.mark.parametrize("how", ["index", "index from a template", "dict", "path", "file uri"])
def test_keeping_a_preview_uploads_exactly_that_file(camb_connection, tmp_path, how):
    run_id = finished_run(camb_connection)
    saved = download(run_id, tmp_path)
    chosen = saved[1]
    options: dict[str, Any] = {
        "index": {"preview": 1, "previews": saved},
        "index from a template": {"preview": "1", "previews": json.dumps(saved)},
        "dict": {"preview": chosen},
        "path": {"preview": chosen["path"]},
        "file uri": {"preview": Path(chosen["path"]).as_uri()},
    }[how]
    voice_id = keep(run_id=str(run_id), gender="1", age="40", language=1, description="kept", **options)
    assert voice_id == FIRST_VOICE_ID
    (sent,) = camb_connection.requests("custom_voice")
    assert sent.status == 200
    assert sent.json["file_sha256"] == chosen["sha256"] == sha256_of(Path(chosen["path"]))
    assert sent.json["file_bytes"] == chosen["bytes"]
    assert sent.json["file_name"] == f"camb_run_{run_id}_preview_1.wav"
    assert {k: sent.json[k] for k in ("voice_name", "gender", "age", "language", "description")} == {
        "voice_name": "Narrator",
        "gender": "1",
        "age": "40",
        "language": "1",
        "description": "kept",
    }
    assert sent.query == {"run_id": str(run_id)}


def test_a_preview_in_object_storage_is_copied_locally_first(camb_connection):
    run_id = finished_run(camb_connection)
    saved = download(run_id, memory_folder())
    voice_id = keep(preview=0, previews=saved)
    assert voice_id == FIRST_VOICE_ID
    (sent,) = camb_connection.requests("custom_voice")
    assert sent.json["file_sha256"] == saved[0]["sha256"]
    assert sent.json["file_name"] == f"camb_run_{run_id}_preview_0.wav"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"preview": 2, "previews": [{"path": "/a.wav"}, {"path": "/b.wav"}]}, "out of range"),
        ({"preview": -1, "previews": [{"path": "/a.wav"}]}, "out of range"),
        ({"preview": 0}, "An index preview needs previews"),
        ({"preview": 0, "previews": "not a list"}, "An index preview needs previews"),
        ({"preview": {"bytes": 3}}, "needs a 'path' string"),
        ({"preview": ""}, "preview must be a path"),
        ({"preview": True}, "preview must be a path"),
        ({"preview": "{tmp}/missing.wav"}, "does not exist"),
        ({"preview": "memory://camb-tests/missing.wav"}, "does not exist"),
        ({"preview": "{tmp}/voice.wav", "gender": "female"}, "gender must be a whole number"),
        ({"preview": "{tmp}/voice.wav", "gender": None}, "gender must be a whole number"),
        ({"preview": "{tmp}/voice.wav", "age": "forty"}, "age must be a whole number"),
        ({"preview": "{tmp}/voice.wav", "voice_name": " "}, "voice_name must not be empty"),
        ({"preview": "{tmp}/voice.wav", "run_id": "1/../2"}, "run id must be a whole number"),
        ({"preview": "{tmp}/voice.wav", "description": 5}, "description must be a string"),
    ],
)
def test_bad_custom_voice_input_is_refused_before_any_request(camb_connection, tmp_path, options, message):
    (tmp_path / "voice.wav").write_bytes(b"RIFF")
    memory_folder()  # attaches the memory:// filesystem
    options = {k: v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v for k, v in options.items()}
    with pytest.raises(CambInputError, match=message):
        keep(**options)
    assert camb_connection.request_count() == 0


def test_a_refused_key_on_upload_is_an_auth_error(camb_connection, tmp_path):
    audio = tmp_path / "voice.wav"
    audio.write_bytes(b"RIFF")
    camb_connection.inject("unauthorized", endpoint="custom_voice", times=1)
    with pytest.raises(CambAuthError):
        keep(preview=str(audio))
    assert camb_connection.request_count("custom_voice") == 1
