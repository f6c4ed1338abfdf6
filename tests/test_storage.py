"""``_storage``: where result operators write, each file whole or not at all, on a local folder and on object
storage (fsspec's ``memory://``, attached to Airflow's object storage; S3 itself is ``test_object_storage.py``).

The writer is driven directly (a write that fails midway), and through the result operators over real
HTTP to the stand-in (a cut-off or refused download into object storage, a ``dag.test()`` run writing
there); bad locations are refused before any request is sent.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO, Any

import pytest
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_camb._storage import (
    destination_folder,
    local_copy,
    media_extension,
    storage_path,
    write_atomically,
)
from airflow_provider_camb.api import DownloadedFile
from airflow_provider_camb.exceptions import CambConnectionError, CambInputError, CambLinkRefusedError
from airflow_provider_camb.operators.dubbing import CambDubbingResultOperator
from airflow_provider_camb.operators.text_to_sound import CambTextToSoundResultOperator
from tests.shared import context, finished_run, ids, memory_folder

DATA = b"RIFF" + bytes(range(256)) * 40


def writer(data: bytes, *, fail_after: int | None = None) -> Any:
    """A ``write`` for ``write_atomically``: writes ``data``, or fails after ``fail_after`` bytes."""

    def write(file: IO[bytes]) -> DownloadedFile:
        if fail_after is not None:
            file.write(data[:fail_after])
            raise CambConnectionError("cut off")
        file.write(data)
        return DownloadedFile(len(data), hashlib.sha256(data).hexdigest(), "audio/wav")

    return write


def names(folder: ObjectStoragePath) -> list[str]:
    """What is in ``folder`` (an object store has no empty folders: none there is nothing there)."""
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


@pytest.fixture(params=["local", "object storage"])
def folder(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStoragePath:
    """An empty destination folder: a local one, or one on object storage (``memory://``)."""
    location = str(tmp_path / "out") if request.param == "local" else memory_folder()
    return destination_folder(location)


# --- the writer ---------------------------------------------------------------------------------------------


def test_a_whole_file_appears_under_its_final_name_only(folder):
    final, saved = write_atomically(folder, "camb_x", writer(DATA), lambda file: f"camb_x.{file.bytes}.wav")
    assert names(folder) == [f"camb_x.{len(DATA)}.wav"] == [final.name]
    assert final.read_bytes() == DATA and saved.sha256 == hashlib.sha256(DATA).hexdigest()


def test_a_write_that_fails_midway_leaves_nothing_and_keeps_the_file_before_it(folder):
    write_atomically(folder, "camb_x", writer(b"the old, whole file"), lambda _: "camb_x.wav")
    with pytest.raises(CambConnectionError, match="cut off"):
        write_atomically(folder, "camb_x", writer(DATA, fail_after=100), lambda _: "camb_x.wav")
    assert names(folder) == ["camb_x.wav"]  # no temporary name left behind
    assert (folder / "camb_x.wav").read_bytes() == b"the old, whole file"


def test_a_name_that_cannot_be_made_leaves_no_temporary_file(folder):
    def no_name(saved: DownloadedFile) -> str:
        raise CambInputError("no name for this file")

    with pytest.raises(CambInputError, match="no name"):
        write_atomically(folder, "camb_x", writer(DATA), no_name)
    assert names(folder) == []


@pytest.mark.parametrize(
    ("content_type", "url", "extension"),
    [
        ("audio/flac; q=1", "", "flac"),
        ("video/mp4", "", "mp4"),
        (None, "https://s/a.OGG?t=1", "ogg"),
        (None, "", "bin"),
    ],
)
def test_the_extension_comes_from_the_content_type_then_the_link(content_type, url, extension):
    assert media_extension(content_type, url) == extension


# --- locations: refused before anything is sent ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "conn_id", "message"),
    [
        ("", None, "must be a local path or an object storage URI"),
        ("   ", None, "must be a local path or an object storage URI"),
        (42, None, "must be a local path or an object storage URI"),
        ("nosuchscheme://bucket/x", None, "cannot be used"),
        ("s3://one@bucket/x", "two", "names the connection 'one' but destination_conn_id is 'two'"),
    ],
)
def test_a_location_that_cannot_work_is_refused(location, conn_id, message):
    with pytest.raises(CambInputError, match=message):
        storage_path(location, "destination", conn_id=conn_id)


def test_a_local_destination_is_created_and_a_file_in_its_place_refused(tmp_path):
    created = destination_folder(str(tmp_path / "a" / "b"))
    assert (tmp_path / "a" / "b").is_dir() and Path(str(created.path)) == tmp_path / "a" / "b"
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(CambInputError, match="exists and is not a folder"):
        destination_folder(str(tmp_path / "file"))
    with pytest.raises(CambInputError, match="Cannot create the destination folder"):
        destination_folder(str(tmp_path / "file" / "below"))


def test_a_local_copy_of_object_storage_is_temporary_and_a_local_path_is_itself(tmp_path):
    stored = ObjectStoragePath(memory_folder()) / "voice.wav"
    stored.write_bytes(DATA)
    with local_copy(str(stored), "preview") as copy:
        assert Path(copy).read_bytes() == DATA and Path(copy).name == "voice.wav"
    assert not Path(copy).exists()  # removed on exit
    (tmp_path / "voice.wav").write_bytes(DATA)
    with local_copy(str(tmp_path / "voice.wav"), "preview") as same:
        assert same == str(tmp_path / "voice.wav")
    with local_copy((tmp_path / "voice.wav").as_uri(), "preview") as from_uri:
        assert Path(from_uri) == tmp_path / "voice.wav"
    with pytest.raises(CambInputError, match="does not exist"), local_copy(str(stored) + ".missing", "preview"):
        pass


def test_bad_destinations_are_refused_by_a_result_operator_before_any_request(camb_connection, tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    for destination in ("", str(tmp_path / "file"), "nosuchscheme://b/x"):
        with pytest.raises(CambInputError):
            CambTextToSoundResultOperator(task_id="save", run_id=1000, destination=destination).execute(context())
    assert camb_connection.request_count() == 0


# --- the result operators into object storage ------------------------------------------------------------------


def test_a_sound_cut_off_on_every_try_leaves_no_object(camb_connection):
    run_id = finished_run(camb_connection, "text-to-sound")
    folder = memory_folder()
    camb_connection.inject("truncate", endpoint="result", times=3)  # every try (1 + 2 retries)
    with pytest.raises(CambConnectionError, match="cut off"):
        CambTextToSoundResultOperator(task_id="save", run_id=run_id, destination=folder).execute(context())
    assert camb_connection.request_count("result") == 3
    assert names(ObjectStoragePath(folder)) == []


def test_a_refused_dub_link_leaves_no_object_of_the_result_and_keeps_the_earlier_whole_one(camb_connection):
    run_id = finished_run(camb_connection, "dub", target_languages=["es-es"])
    folder = memory_folder()
    save = CambDubbingResultOperator(task_id="save", run_id=run_id, destination=folder)
    camb_connection.inject("forbidden", endpoint="media", times=1)  # the audio's link is refused at once
    with pytest.raises(CambLinkRefusedError, match="the dubbed audio from localhost"):
        save.execute(context())
    assert names(ObjectStoragePath(folder)) == []  # nothing of the result, no temporary object
    first = save.execute(context())["default"]  # now whole
    camb_connection.inject("slow", endpoint="media", delay=0)  # the audio passes ...
    camb_connection.inject("forbidden", endpoint="media")  # ... the video's link is refused
    with pytest.raises(CambLinkRefusedError, match="the dubbed video from localhost"):
        save.execute(context())
    assert names(ObjectStoragePath(folder)) == sorted(Path(file["path"]).name for file in first.values())
    for file in first.values():  # the earlier whole result, untouched: all of this result or none of it
        assert hashlib.sha256(ObjectStoragePath(file["path"]).read_bytes()).hexdigest() == file["sha256"]


DUB_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_camb.operators.dubbing import CambDubbingOperator, CambDubbingResultOperator

with DAG("{dag_id}", start_date=pendulum.datetime(2024, 1, 1), schedule=None) as dag:
    dub = CambDubbingOperator(
        task_id="dub", video_url="https://media.example.com/a.mp4", source_language=1, target_languages=["fr-fr"],
        wait_for_completion=True, deferrable=True, poll_interval=0.3,
    )
    CambDubbingResultOperator(task_id="save", run_id=dub.output, destination={destination!r})
"""


def test_a_dag_run_writes_every_dubbed_file_whole_into_object_storage(run_dag, camb_connection):
    folder = memory_folder()  # dag.test() runs the tasks in this process, where memory:// is attached
    result = run_dag.run(DUB_DAG.format(dag_id=f"storage_dub_{next(ids)}", destination=folder))
    assert result.task_states == {"dub": "success", "save": "success"}
    run_id = result.xcom("dub")
    (files,) = result.xcom("save").values()
    assert names(ObjectStoragePath(folder)) == [
        f"camb_dub_run_{run_id}_{part}" for part in ("audio.wav", "transcript.json", "video.mp4")
    ]
    for file in files.values():
        data = ObjectStoragePath(file["path"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (file["bytes"], file["sha256"])
