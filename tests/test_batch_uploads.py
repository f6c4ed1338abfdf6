"""Batches whose items upload their media (audio separation, transcription) in real DAGs against the stand-in.

The stand-in hashes each create's file part as it arrives: every item is created exactly once, with its own
file's bytes; both stems of a separation are saved whole as the single result operator saves them; a bad item
is refused before any request; a retry or a rerun (from another folder, too) uploads nothing twice.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections import Counter
from pathlib import Path

import pytest

from airflow_provider_camb._batch_items import check_items, read_items
from airflow_provider_camb.operators.audio_separation import CambAudioSeparationResultOperator
from airflow_provider_camb.operators.batch import CambAudioSeparationBatchOperator, CambTranscriptionBatchOperator
from tests.shared import context
from tests.test_batch import assert_whole, manifest_of, run_batch

SEPARATION = "CambAudioSeparationBatchOperator"
TRANSCRIPTION = "CambTranscriptionBatchOperator"


def media_files(folder: Path, count: int) -> dict[str, Path]:
    """``count`` small WAV-like files of different bytes, by name."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for i in range(count):
        path = folder / f"song-{i:02d}.wav"
        path.write_bytes(b"RIFF" + i.to_bytes(4, "little") + b"WAVE" + bytes(1000 + 100 * i))
        files[path.name] = path
    return files


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def uploads(standin) -> Counter[str]:
    """The sha256 of the file part of every create CAMB accepted, counted."""
    return Counter(r.json.get("file_sha256") for r in standin.requests("create") if r.status == 200)


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "on the worker"])
def test_an_audio_separation_batch_uploads_each_file_once_and_saves_both_stems_whole(
    run_dag, camb, tmp_path, deferrable
):
    files = media_files(tmp_path / "media", 5)
    items = [{"key": f"song-{i}", "media_file": str(path)} for i, path in enumerate(files.values())]
    out = tmp_path / "out"
    result = run_batch(
        run_dag, out, operator=SEPARATION, items=items, max_in_flight=2, deferrable=deferrable, resume_margin=0
    )  # 0: a deferrable batch defers at once
    assert result.task_states == {"batch": "success"}
    manifest = str(out / "camb_batch_batch.manifest.jsonl")
    assert result.xcom("batch") == {"manifest": manifest, "succeeded": 5, "failed": 0, "skipped": 0}
    creates = camb.requests("create")
    assert len(creates) == 5 and uploads(camb) == {sha(path): 1 for path in files.values()}
    assert {r.json["file_name"] for r in creates} == set(files)
    assert {r.json["file_bytes"] for r in creates} == {path.stat().st_size for path in files.values()}
    entries = manifest_of(out)
    assert sorted(entries) == sorted(item["key"] for item in items)
    for entry in entries.values():
        assert entry.status == "succeeded" and entry.error is None
        assert sorted(Path(f["path"]).name for f in entry.files) == [
            f"{entry.key}_background.wav",
            f"{entry.key}_foreground.wav",
        ]
    assert_whole(out, entries.values())
    assert {r.path for r in camb.requests("bulk_result")} == {"/audio-separation-results"}
    assert camb.requests("result") == []  # every item's links came in bulk
    entry = entries["song-3"]
    single = CambAudioSeparationResultOperator(
        task_id="single", run_id=entry.run_id, destination=str(tmp_path / "single")
    ).execute(context())
    for stem in ("foreground", "background"):
        batch_file = out / f"song-3_{stem}.wav"
        assert batch_file.read_bytes() == Path(single[stem]["path"]).read_bytes()


def test_a_transcription_batch_uploads_its_file_items_and_sends_its_url_items(run_dag, camb, tmp_path):
    files = media_files(tmp_path / "media", 3)
    items = [
        *({"key": f"file-{i}", "media_file": str(path)} for i, path in enumerate(files.values())),
        {"key": "url-0", "media_url": "https://media.example.com/talk.mp3", "language": 1},
    ]
    out = tmp_path / "out"
    result = run_batch(run_dag, out, operator=TRANSCRIPTION, items=items, language="auto")
    assert result.xcom("batch")["succeeded"] == 4
    creates = camb.requests("create")
    assert len(creates) == 4 and uploads(camb) == {**{sha(path): 1 for path in files.values()}, None: 1}
    by_url = [r.json for r in creates if "media_url" in r.json]
    assert by_url == [{"language": "1", "media_url": "https://media.example.com/talk.mp3"}]
    assert all(r.json["language"] == "auto" for r in creates if "file_sha256" in r.json)
    entries = manifest_of(out)
    assert_whole(out, entries.values())
    assert [Path(f["path"]).name for f in entries["file-1"].files] == ["file-1.json"]


def test_media_files_in_object_storage_are_read_through_media_conn_id(run_dag, camb, s3_connection, tmp_path):
    bucket = s3_connection.create_bucket(f"camb-{uuid.uuid4().hex[:16]}")
    files = media_files(tmp_path / "media", 2)
    client = s3_connection.client()
    for name, path in files.items():
        client.put_object(Bucket=bucket, Key=f"talks/{name}", Body=path.read_bytes())
    items = [{"media_file": f"s3://{bucket}/talks/{name}"} for name in files]  # keys from the inputs
    result = run_batch(run_dag, tmp_path / "out", operator=SEPARATION, items=items, media_conn_id="camb_s3")
    assert result.xcom("batch")["succeeded"] == 2
    assert uploads(camb) == {sha(path): 1 for path in files.values()}


def test_bad_media_items_are_refused_before_any_request_naming_their_index_and_key(run_dag, camb, tmp_path, capfd):
    (song,) = media_files(tmp_path / "media", 1).values()
    url = "https://media.example.com/talk.mp3"
    transcription = [
        {"key": "fine", "media_file": str(song)},
        {"key": "gone", "media_file": str(tmp_path / "media" / "gone.wav")},
        {"key": "both", "media_file": str(song), "media_url": url},
        {"key": "neither", "language": 1},
        {"media_file": str(tmp_path / "media")},  # a folder
    ]
    result = run_batch(run_dag, tmp_path / "t", operator=TRANSCRIPTION, items=transcription, language="auto")
    separation = [{"key": "fine", "media_file": str(song)}, {"key": "by-url", "media_url": url}, {"key": "none"}]
    second = run_batch(run_dag, tmp_path / "s", operator=SEPARATION, items=separation, retries=1)
    assert result.task_states == {"batch": "failed"} and second.task_states == {"batch": "failed"}
    assert second.tries["batch"] == 1  # bad input: no retries
    assert camb.requests() == []
    assert not (tmp_path / "t").exists() and not (tmp_path / "s").exists()
    message = capfd.readouterr().out
    assert "CambInputError: 4 of 5 batch items are refused; nothing was sent" in message
    assert f"Item 1 (key 'gone'): The media_file {str(tmp_path / 'media' / 'gone.wav')!r} does not exist" in message
    assert "Item 2 (key 'both'): Give media_file (a local or object storage path) or media_url, exactly one" in message
    assert "Item 3 (key 'neither'): Give media_file" in message
    assert "Item 4: The media_file" in message and "is not a file" in message
    assert "CambInputError: 2 of 3 batch items are refused; nothing was sent" in message
    assert "Item 1 (key 'by-url'): unknown field(s) media_url; the fields are media_file, project_name" in message
    assert "Item 2 (key 'none'): A CAMB audio separation task needs media_file" in message


def test_a_retry_and_a_rerun_from_another_folder_upload_no_file_twice(run_dag, camb, tmp_path):
    files = media_files(tmp_path / "first", 6)
    items = [{"media_file": str(path)} for path in files.values()]  # keys from the inputs: the file names
    out = tmp_path / "out"
    camb.inject("unauthorized", endpoint="create", after=2)  # the third create ends the first try
    result = run_batch(run_dag, out, operator=SEPARATION, items=items, max_in_flight=2, retries=1)
    assert result.task_states == {"batch": "success"} and result.tries["batch"] == 2
    assert uploads(camb) == {sha(path): 1 for path in files.values()}
    first = manifest_of(out)
    assert len(first) == 6
    assert_whole(out, first.values())

    moved = tmp_path / "second"  # the same files staged elsewhere, as a new temporary folder would be
    shutil.copytree(tmp_path / "first", moved)
    shutil.rmtree(tmp_path / "first")
    camb.clear_requests()
    items = [{"media_file": str(moved / name)} for name in files]
    result = run_batch(run_dag, out, operator=SEPARATION, items=items, max_in_flight=2)
    assert result.xcom("batch")["succeeded"] == 6
    assert camb.requests("create") == [] and camb.requests("status") == [] and camb.requests("bulk_result") == []
    assert manifest_of(out).keys() == first.keys()


def test_a_media_items_key_covers_its_file_name_and_fields_not_its_folder(tmp_path):
    def keys(*items, **options):
        operator = CambTranscriptionBatchOperator(task_id="t", destination=".", **options)
        checked = check_items(
            read_items(list(items), None, None),
            kind="transcribe",
            fields=operator.item_fields,
            defaults={"language": 1},
            build=operator.item_request,
            media=lambda fields: operator.item_media(fields, look=False),
        )
        return [item.key for item in checked]

    a, b = tmp_path / "a", tmp_path / "b"
    (same_in_a,) = keys({"media_file": str(a / "talk.wav")})
    (same_in_b,) = keys({"media_file": str(b / "talk.wav")})
    other, spanish = keys({"media_file": str(a / "other.wav")}, {"media_file": str(a / "talk.wav"), "language": 54})
    assert same_in_a == same_in_b and len({same_in_a, other, spanish}) == 3
    separation = CambAudioSeparationBatchOperator(task_id="s", destination=".")
    (separated,) = check_items(
        read_items([{"media_file": str(a / "talk.wav")}], None, None),
        kind="audio-separation",
        fields=separation.item_fields,
        defaults={},
        build=separation.item_request,
        media=lambda fields: separation.item_media(fields, look=False),
    )
    assert separated.key != same_in_a and separated.media is not None and separated.media.name == "talk.wav"
