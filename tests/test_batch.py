"""Batch operators in real DAGs (``dag.test()``) against the stand-in: each item's CAMB task created exactly once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from airflow_provider_camb import _manifest
from airflow_provider_camb.triggers.camb_batch import CambBatchTrigger
from tests.airflow_harness import AIRFLOW_3, asset_events
from tests.shared import ids, logged, sha256_of

BATCH_DAG = """
from datetime import timedelta
import pendulum
from airflow.providers.common.compat.sdk import DAG, Asset
from airflow_provider_camb.operators.batch import {operator}

with DAG("{dag_id}", start_date=pendulum.datetime(2024, 1, 1), schedule=None) as dag:
    {operator}(
        task_id="batch", destination={destination!r}, poll_interval=0.2, retry_delay=timedelta(0),
        outlets=[Asset("camb_batch_{dag_id}")], {options}
    )
"""


def run_batch(run_dag, destination, operator="CambTextToSpeechBatchOperator", **options):
    dag_id = f"batch_{next(ids)}"
    text = ", ".join(f"{name}={value!r}" for name, value in options.items())
    return run_dag.run(BATCH_DAG.format(operator=operator, dag_id=dag_id, destination=str(destination), options=text))


def lines(count, prefix="line"):
    return [{"key": f"{prefix}-{i:03d}", "text": f"Line {i} of the book."} for i in range(count)]


def manifest_of(folder: Path, task_id="batch") -> dict[str, _manifest.Entry]:
    read = _manifest.read(_manifest.ObjectStoragePath(str(folder / f"camb_batch_{task_id}.manifest.jsonl")))
    assert read is not None
    return read


def creates_by_key(standin) -> Counter[str]:
    """How many CAMB tasks the stand-in created per item (the key is in the text of these items)."""
    return Counter(r.json["text"] for r in standin.requests("create") if r.status == 200)


def assert_whole(folder: Path, entries) -> None:
    for entry in entries:
        for file in entry.files:
            path = folder / Path(file["path"]).name
            assert path.stat().st_size == file["bytes"]
            assert sha256_of(path) == file["sha256"]


DEFERS = "Deferring: the triggerer waits for the"


@pytest.mark.parametrize(
    ("waiting", "defers"),
    [
        ({"deferrable": True, "resume_margin": 0}, True),
        ({"deferrable": True}, False),  # its tasks end within resume_margin (30 s): no deferral, no resume
        ({"deferrable": False}, False),
    ],
    ids=["deferred", "deferrable, done within resume_margin", "on the worker"],
)
def test_a_speech_batch_creates_each_item_once_and_writes_its_files_and_the_manifest(
    run_dag, camb, tmp_path, capfd, waiting, defers
):
    items = lines(30)
    result = run_batch(run_dag, tmp_path, items=items, voice_id=5, language=1, max_in_flight=12, **waiting)
    assert result.task_states == {"batch": "success"}
    assert (DEFERS in logged(capfd)) is defers
    manifest = str(tmp_path / "camb_batch_batch.manifest.jsonl")
    assert result.xcom("batch") == {"manifest": manifest, "succeeded": 30, "failed": 0, "skipped": 0}
    assert len(camb.requests("create")) == 30 and set(creates_by_key(camb).values()) == {1}
    entries = manifest_of(tmp_path)
    assert sorted(entries) == [item["key"] for item in items]
    for entry in entries.values():
        assert entry.status == "succeeded" and entry.camb_status == "SUCCESS" and entry.error is None
        assert entry.created_at and entry.finished_at and isinstance(entry.run_id, int)
        assert [Path(f["path"]).name for f in entry.files] == [f"{entry.key}.wav"]
    assert_whole(tmp_path, entries.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{i['key']}.wav" for i in items] + [Path(manifest).name]
    )
    assert {r.path for r in camb.requests("bulk_result")} == {"/tts-results"}
    assert camb.requests("result") == []  # every link came in bulk
    if AIRFLOW_3:
        ((_, task_id, extra),) = asset_events(result.dag_id, result.run_id)
        assert task_id == "batch"
        assert extra["manifest"] == manifest and extra["succeeded"] == 30 and extra["files_total"] == 30
        assert {f["path"] for f in extra["files"]} == {f["path"] for e in entries.values() for f in e.files}


def test_items_from_a_json_lines_file(run_dag, camb, tmp_path):
    source = tmp_path / "book.jsonl"
    source.write_text("".join(json.dumps(item) + "\n" for item in lines(5)))
    out = tmp_path / "out"
    result = run_batch(run_dag, out, items_uri=str(source), voice_id=5, language=1)
    assert result.xcom("batch")["succeeded"] == 5
    assert camb.requests("create")[0].json == {"text": "Line 0 of the book.", "voice_id": 5, "language": 1}


def test_one_bad_item_fails_the_task_before_any_request(run_dag, camb, tmp_path):
    items = [*lines(3), {"key": "bad", "text": "Fine.", "voice_id": "narrator"}]
    result = run_batch(run_dag, tmp_path, items=items, language=1, voice_id=5, retries=2)
    assert result.task_states == {"batch": "failed"}
    assert result.tries["batch"] == 1  # bad input: no retries
    assert camb.requests() == []
    assert not (tmp_path / "camb_batch_batch.manifest.jsonl").exists()


def test_failed_items_fail_the_task_after_every_other_item_is_done(run_dag, camb, tmp_path):
    camb.configure(outcomes={"Line 3 ": "ERROR", "Line 7 ": "TIMEOUT"})
    result = run_batch(run_dag, tmp_path, items=lines(10), voice_id=5, language=1)
    assert result.task_states == {"batch": "failed"}
    entries = manifest_of(tmp_path)
    assert Counter(entry.status for entry in entries.values()) == {"succeeded": 8, "failed": 2}
    assert_whole(tmp_path, entries.values())
    failed = entries["line-003"]
    assert failed.camb_status == "ERROR" and failed.files == []
    assert failed.error is not None
    assert f"task {failed.camb_task_id!r} ended with status ERROR" in failed.error["reason"]
    assert "Review the inputs (text, voice_id and language)" in failed.error["advice"]
    assert entries["line-007"].error is not None and "Retry the task" in entries["line-007"].error["advice"]


def test_with_max_failures_the_batch_succeeds_and_its_counts_say_what_failed(run_dag, camb, tmp_path):
    camb.configure(outcomes={"Line 3 ": "ERROR"})
    result = run_batch(run_dag, tmp_path, items=lines(6), voice_id=5, language=1, max_failures=1)
    assert result.task_states == {"batch": "success"}
    assert result.xcom("batch")["succeeded"] == 5 and result.xcom("batch")["failed"] == 1


def test_the_error_lists_the_first_twenty_failed_keys_with_task_and_advice_then_a_count(run_dag, camb, tmp_path, capfd):
    camb.configure(outcomes={"Line": "ERROR"})
    run_batch(run_dag, tmp_path, items=lines(25), voice_id=5, language=1)
    entries = manifest_of(tmp_path)
    output = capfd.readouterr().out
    start = output.index("CambBatchFailedError: ") + len("CambBatchFailedError: ")
    message = output[start : output.index("more.", start) + len("more.")]
    assert message.startswith("25 of 25 items of the CAMB batch failed (max_failures=0)")
    assert message.count("\n- ") == 20 and message.endswith("... and 5 more.")
    first = entries["line-000"]
    assert f"- 'line-000' (CAMB task {first.camb_task_id}): " in message and "Review the inputs" in message


def test_a_retry_creates_only_what_the_first_try_did_not(run_dag, camb, tmp_path):
    camb.inject("unauthorized", endpoint="create", after=13)  # the 14th create ends the first try
    result = run_batch(run_dag, tmp_path, items=lines(30), voice_id=5, language=1, max_in_flight=5, retries=1)
    assert result.task_states == {"batch": "success"}
    assert result.tries["batch"] == 2
    assert set(creates_by_key(camb).values()) == {1} and len(creates_by_key(camb)) == 30
    assert_whole(tmp_path, manifest_of(tmp_path).values())


def test_a_retry_gives_items_that_ended_in_error_a_new_task_and_no_other(run_dag, camb, tmp_path):
    camb.configure(outcomes={"Line 2 ": "ERROR"})
    result = run_batch(run_dag, tmp_path, items=lines(4), voice_id=5, language=1, retries=1)
    assert result.task_states == {"batch": "failed"} and result.tries["batch"] == 2
    assert creates_by_key(camb) == {
        "Line 0 of the book.": 1,
        "Line 1 of the book.": 1,
        "Line 2 of the book.": 2,
        "Line 3 of the book.": 1,
    }
    entry = manifest_of(tmp_path)["line-002"]
    assert len(entry.replaced_task_ids) == 1 and entry.replaced_task_ids[0] != entry.camb_task_id


def test_without_recreate_failed_a_retry_keeps_failed_items_failed(run_dag, camb, tmp_path):
    camb.configure(outcomes={"Line 2 ": "ERROR"})
    run_batch(run_dag, tmp_path, items=lines(4), voice_id=5, language=1, retries=1, recreate_failed=False)
    assert creates_by_key(camb)["Line 2 of the book."] == 1


def test_a_rerun_over_the_same_destination_creates_nothing_and_downloads_only_what_is_not_whole(
    run_dag, camb, tmp_path
):
    run_batch(run_dag, tmp_path, items=lines(6), voice_id=5, language=1)
    (tmp_path / "line-001.wav").unlink()
    (tmp_path / "line-004.wav").write_bytes(b"RIFF" + bytes(10))
    camb.clear_requests()
    result = run_batch(run_dag, tmp_path, items=lines(6), voice_id=5, language=1)
    assert result.xcom("batch")["succeeded"] == 6
    assert camb.requests("create") == [] and camb.requests("status") == []
    assert len(camb.requests("media")) == 2
    assert_whole(tmp_path, manifest_of(tmp_path).values())


def test_payment_required_stops_new_creates_and_the_tasks_in_flight_still_finish(run_dag, camb, tmp_path):
    camb.configure(outcomes={"Line 1 ": "PAYMENT_REQUIRED"})
    result = run_batch(run_dag, tmp_path, items=lines(12), voice_id=5, language=1, max_in_flight=3, retries=2)
    assert result.task_states == {"batch": "failed"} and result.tries["batch"] == 1  # no retries
    entries = manifest_of(tmp_path)
    unpaid = entries["line-001"]
    assert unpaid.status == "failed" and unpaid.camb_status == "PAYMENT_REQUIRED"
    seen = max(r.time for r in camb.requests("status") if r.path_id == unpaid.camb_task_id)
    assert all(r.time < seen for r in camb.requests("create"))  # nothing created once CAMB said so
    created = [e for e in entries.values() if e.camb_task_id is not None]
    assert len(created) == len(camb.requests("create")) >= 3
    assert {e.status for e in created if e is not unpaid} == {"succeeded"}  # those in flight finished
    assert_whole(tmp_path, created)
    skipped = [e for e in entries.values() if e.camb_task_id is None]
    assert skipped and {e.status for e in skipped} == {"skipped"}
    assert "Add credits" in str(skipped[0].error)


OTHER_KINDS = {
    "sound": ("CambTextToSoundBatchOperator", [{"key": "rain", "prompt": "Rain on a tin roof."}], {}, ["rain.wav"]),
    "dubbing": (
        "CambDubbingBatchOperator",
        [{"key": "intro", "video_url": "https://example.com/intro.mp4"}],
        {"source_language": 1, "target_languages": ["fr-fr", "de-de"]},
        [
            f"intro_{lang}_{part}"
            for lang in ("de-de", "fr-fr")
            for part in ("audio.wav", "transcript.json", "video.mp4")
        ],
    ),
    "voices": (
        "CambTextToVoiceBatchOperator",
        [{"key": "narrator", "text": "Welcome aboard, everyone."}],
        {
            "voice_description": "A warm and friendly middle-aged female narrator with a calm, steady pace, "
            "a soft British accent and a clear, reassuring tone, suited to audiobooks."
        },
        ["narrator_preview_0.wav", "narrator_preview_1.wav"],
    ),
}


@pytest.mark.parametrize(("operator", "items", "defaults", "names"), OTHER_KINDS.values(), ids=OTHER_KINDS)
def test_every_kind_has_a_batch_operator_over_the_same_core(run_dag, camb, tmp_path, operator, items, defaults, names):
    result = run_batch(run_dag, tmp_path, operator=operator, items=items, **defaults)
    assert result.xcom("batch")["succeeded"] == 1
    entry = manifest_of(tmp_path)[items[0]["key"]]
    assert sorted(Path(f["path"]).name for f in entry.files) == sorted(names)
    assert_whole(tmp_path, [entry])


def test_the_trigger_row_holds_only_ids_and_numbers_about_forty_bytes_a_task():
    ids = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(1000)]
    trigger = CambBatchTrigger("tts", ids, "camb_default", 5.0, 1.7e9, 250, 10_000, 4000, False, 1.7e9, 30.0)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_camb.triggers.camb_batch.CambBatchTrigger"
    size = len(json.dumps(kwargs))
    assert 40_000 <= size <= 41_000  # max_in_flight=1000: 40 KB, whatever the batch's size
    assert set(kwargs) == {
        "kind",
        "camb_task_ids",
        "camb_conn_id",
        "poll_interval",
        "deadline",
        "enough",
        "total",
        "done",
        "creates_stopped",
        "deferred_at",
        "resume_margin",
    }


def test_a_batch_trigger_row_without_the_deferral_time_still_loads():
    row = {  # as the batch trigger wrote it before it held resume_margin: no deferred_at, no resume_margin
        "kind": "tts",
        "camb_task_ids": ["7c2f5f1e-0000-4000-8000-000000000000"],
        "camb_conn_id": "camb_default",
        "poll_interval": 5.0,
        "deadline": 1.7e9,
        "enough": 0,
        "total": 1,
        "done": 0,
        "creates_stopped": False,
    }
    trigger = CambBatchTrigger(**json.loads(json.dumps(row)))
    assert (trigger.deferred_at, trigger.resume_margin) == (None, None)
    assert trigger.serialize()[1] == {**row, "deferred_at": None, "resume_margin": None}


def test_at_the_timeout_pending_items_fail_and_the_rest_are_not_created(run_dag, camb, tmp_path):
    camb.configure(pending_seconds=30)
    result = run_batch(run_dag, tmp_path, items=lines(6), voice_id=5, language=1, max_in_flight=2, timeout=2)
    assert result.task_states == {"batch": "failed"}
    assert len(camb.requests("create")) == 2
    entries = manifest_of(tmp_path)
    waited = [entries["line-000"], entries["line-001"]]
    assert {e.status for e in waited} == {"failed"} and {e.camb_status for e in waited} == {"PENDING"}
    assert all("did not finish before the deadline" in str(e.error) and "timeout" in str(e.error) for e in waited)
    rest = [entries[f"line-{i:03d}"] for i in range(2, 6)]
    assert {e.status for e in rest} == {"failed"} and all("timeout passed first" in str(e.error) for e in rest)


def test_an_item_whose_create_got_no_reply_is_never_sent_again_and_the_rest_finish(run_dag, camb, tmp_path):
    camb.inject("drop", endpoint="create", after=2)  # the third create is sent and its reply never comes
    result = run_batch(run_dag, tmp_path, items=lines(5), voice_id=5, language=1, retries=1)
    assert result.task_states == {"batch": "failed"} and result.tries["batch"] == 2
    sent = Counter(r.json["text"] for r in camb.requests("create"))
    assert sent == {f"Line {i} of the book.": 1 for i in range(5)}  # over both tries: nothing sent twice
    entries = manifest_of(tmp_path)
    lost = entries["line-002"]
    assert lost.status == "failed" and lost.uncertain and lost.camb_task_id is None
    assert any(words in str(lost.error) for words in ("may have created", "cannot know"))  # 3.3+; before 3.3
    assert {entries[f"line-{i:03d}"].status for i in (0, 1, 3, 4)} == {"succeeded"}


def test_a_deferrable_batch_defers_what_is_still_pending_once_resume_margin_passed_on_the_worker(
    run_dag, camb, tmp_path, capfd
):
    camb.configure(pending_seconds=3)  # longer than the 1 s it waits on the worker first
    result = run_batch(run_dag, tmp_path, items=lines(3), voice_id=5, language=1, deferrable=True, resume_margin=1)
    assert result.task_states == {"batch": "success"}
    assert result.xcom("batch")["succeeded"] == 3 and set(creates_by_key(camb).values()) == {1}
    assert "Deferring: the triggerer waits for the 3 pending CAMB tasks." in logged(capfd)
