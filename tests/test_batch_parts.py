"""The parts under the batch operators: items and their checks, the manifest, and the bulk result endpoints."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_camb import _manifest
from airflow_provider_camb._batch_items import check_items, default_key, read_items
from airflow_provider_camb.exceptions import CambInputError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.kinds import TTS
from tests.shared import logged, sha256_of

TTS_FIELDS = ("text", "voice_id", "language", "gender", "age")


def tts(fields):
    return TTS.create_request({name: fields.get(name) for name in ("text", "voice_id", "language", "gender")})


def checked(raw, **defaults):
    return check_items(raw, kind="tts", fields=TTS_FIELDS, defaults=defaults, build=tts)


# --- items -----------------------------------------------------------------------------------------


def test_items_take_the_defaults_and_override_them():
    items = checked(
        read_items([{"text": "One.", "key": "a"}, {"text": "Two.", "voice_id": 7}], None, None), voice_id=5, language=1
    )
    assert items[0].key == "a"
    assert items[0].request.json == {"text": "One.", "voice_id": 5, "language": 1}
    assert items[1].request.json == {"text": "Two.", "voice_id": 7, "language": 1}


def test_a_default_key_is_a_stable_hash_of_the_checked_inputs():
    first = checked(read_items([{"text": "One.", "voice_id": "5"}], None, None), language=1)[0]
    again = checked(read_items([{"text": "One.", "voice_id": 5, "language": "1"}], None, None))[0]
    assert first.key == again.key == default_key("tts", first.request)
    assert len(first.key) == 16


def test_every_bad_item_is_named_with_its_key_and_reason_and_nothing_else_passes():
    raw = read_items(
        [
            {"text": "Fine.", "key": "ok"},
            {"text": "", "key": "blank"},
            {"text": "Hi.", "voice_id": "narrator", "key": "x"},
            {"txt": "typo"},
            {"text": "Hi.", "key": "ok"},
            {"text": "Hi.", "key": "../escape"},
        ],
        None,
        None,
    )
    with pytest.raises(CambInputError) as caught:
        checked(raw, voice_id=5, language=1)
    message = str(caught.value)
    assert "5 of 6 batch items are refused; nothing was sent" in message
    assert "Item 1 (key 'blank'): text must not be empty" in message
    assert "Item 2 (key 'x'): voice_id must be a whole number" in message
    assert "Item 3: unknown field(s) txt" in message
    assert "Item 4 (key 'ok'): key 'ok' is also the key of item 0" in message
    assert "Item 5 (key '../escape'): a key must be" in message


def test_identical_items_without_keys_are_refused_as_duplicates():
    with pytest.raises(CambInputError, match="inputs are identical; give each a key"):
        checked(read_items([{"text": "Same."}, {"text": "Same."}], None, None), voice_id=5, language=1)


def test_the_error_lists_twenty_bad_items_then_a_count():
    with pytest.raises(CambInputError) as caught:
        checked(read_items([{"text": ""}] * 25, None, None), voice_id=5, language=1)
    assert str(caught.value).count("\n- ") == 20
    assert "... and 5 more." in str(caught.value)


def test_items_rendered_to_text_by_a_template_are_read_back():
    assert len(read_items(json.dumps([{"text": "a"}, {"text": "b"}]), None, None)) == 2
    assert len(read_items(str([{"text": "a"}]), None, None)) == 1


@pytest.mark.parametrize(
    ("items", "uri", "message"),
    [
        (None, None, "either items"),
        ([{"text": "a"}], "/x.jsonl", "either items"),
        ("not a list", None, "must be a list of dicts"),
        (["text"], None, "Item 0 of items must be a dict"),
        ([], None, "no items"),
    ],
)
def test_items_that_are_not_a_list_of_dicts_are_refused(items, uri, message):
    with pytest.raises(CambInputError, match=message):
        checked(read_items(items, uri, None), voice_id=5, language=1)


def test_json_lines_items_name_their_line(tmp_path):
    path = tmp_path / "lines.jsonl"
    path.write_text('{"key": "l1", "text": "One."}\n\n{"key": "l3", "text": ""}\n')
    with pytest.raises(CambInputError, match=rf"Line 3 of {path} \(key 'l3'\): text must not be empty"):
        checked(read_items(None, str(path), None), voice_id=5, language=1)


def test_a_line_that_is_not_json_is_refused_with_its_number(tmp_path):
    path = tmp_path / "lines.jsonl"
    path.write_text('{"text": "One."}\n{"text": \n')
    with pytest.raises(CambInputError, match=r"Line 2 of .* is not JSON"):
        read_items(None, str(path), None)


def test_csv_items_take_digit_strings_and_empty_cells_are_not_given(tmp_path):
    path = tmp_path / "lines.csv"
    path.write_text("key,text,voice_id,gender\nc1,One.,7,\nc2,Two.,,2\n")
    items = checked(read_items(None, str(path), None), voice_id=5, language=1)
    assert [item.request.json for item in items] == [
        {"text": "One.", "voice_id": 7, "language": 1},
        {"text": "Two.", "voice_id": 5, "language": 1, "gender": 2},
    ]
    assert [item.where for item in items] == [f"line 2 of {path}", f"line 3 of {path}"]


def test_items_in_object_storage_are_read_through_the_connection(s3_connection, tmp_path):
    bucket = s3_connection.create_bucket(f"camb-{uuid.uuid4().hex[:16]}")
    uri = f"s3://{bucket}/in/lines.jsonl"
    ObjectStoragePath(uri, conn_id="camb_s3").write_text('{"key": "s1", "text": "One."}\n')
    (item,) = checked(read_items(None, uri, "camb_s3"), voice_id=5, language=1)
    assert (item.key, item.where) == ("s1", f"line 1 of {uri}")


@pytest.mark.parametrize(
    ("name", "message"), [("lines.txt", "must name a JSON Lines file"), ("gone.jsonl", "does not exist")]
)
def test_an_items_file_of_another_type_or_missing_is_refused(tmp_path, name, message):
    with pytest.raises(CambInputError, match=message):
        read_items(None, str(tmp_path / name), None)


# --- the manifest ---------------------------------------------------------------------------------


def test_the_manifest_is_written_whole_and_read_back(tmp_path):
    folder = ObjectStoragePath(str(tmp_path))
    entries = [_manifest.Entry("b", 1), _manifest.Entry("a", 0, camb_task_id="t-1", status=_manifest.PENDING)]
    entries[0].fail("CAMB task 't-2' ended with ERROR", "Review the inputs.")
    path = _manifest.write(folder, "batch.manifest.jsonl", entries)
    lines = Path(str(path.path)).read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["a", "b"]  # in item order
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch.manifest.jsonl"]  # no temporary file left
    read = _manifest.read(folder / "batch.manifest.jsonl")
    assert read is not None
    assert read["a"].camb_task_id == "t-1"
    assert read["b"].status == _manifest.FAILED
    assert read["b"].error == {"reason": "CAMB task 't-2' ended with ERROR", "advice": "Review the inputs."}
    assert read["b"].finished_at is not None


def test_a_missing_manifest_reads_as_none_and_newer_fields_are_ignored(tmp_path):
    folder = ObjectStoragePath(str(tmp_path))
    assert _manifest.read(folder / "none.jsonl") is None
    (tmp_path / "m.jsonl").write_text(json.dumps({"key": "a", "index": 0, "status": "later", "from_the_future": 1}))
    read = _manifest.read(folder / "m.jsonl")
    assert read is not None
    assert read["a"].status == _manifest.NEW


def test_a_damaged_manifest_is_refused_with_what_to_do(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"key": "a", "index": 0}\n{"key": \n')
    with pytest.raises(CambInputError, match=r"Line 2 of the manifest .* remove the damaged file"):
        _manifest.read(ObjectStoragePath(str(tmp_path)) / "m.jsonl")


def test_a_file_is_whole_only_with_its_recorded_size_and_sha256(tmp_path):
    folder = ObjectStoragePath(str(tmp_path))
    path = tmp_path / "a.wav"
    path.write_bytes(b"RIFF" + bytes(100))
    listed = _manifest.listed(folder / "a.wav", 104, sha256_of(path))
    assert _manifest.is_whole(folder, listed)
    path.write_bytes(b"RIFF" + bytes(99) + b"x")  # same size, other bytes
    assert not _manifest.is_whole(folder, listed)
    path.write_bytes(b"RIFF")
    assert not _manifest.is_whole(folder, listed)
    path.unlink()
    assert not _manifest.is_whole(folder, listed)


# --- bulk results ---------------------------------------------------------------------------------


def finished_runs(standin, kind, count, **request):
    hook = CambHook()
    runs = [
        hook.get_task_status(kind, standin.add_task(kind=kind, status="SUCCESS", request=request)).run_id
        for _ in range(count)
    ]
    standin.clear_requests()
    return runs


def test_speech_links_of_many_runs_come_in_bulk_requests_of_one_hundred(camb_connection):
    runs = finished_runs(camb_connection, "tts", 150) + finished_runs(camb_connection, "translated-tts", 3)
    links = CambHook().get_result_links("tts", runs)
    assert sorted(links) == sorted(runs)
    bulk = camb_connection.requests("bulk_result")
    assert [(r.path, len(r.json["run_ids"])) for r in bulk] == [("/tts-results", 100), ("/tts-results", 53)]
    assert camb_connection.requests("result") == []
    assert all(link.startswith(camb_connection.preview_base_url) for link in links.values())


def test_a_run_left_out_of_the_bulk_reply_is_asked_alone(camb_connection):
    (run,) = finished_runs(camb_connection, "text-to-sound", 1)
    unknown = run + 10_000  # the stand-in leaves unknown runs out, as CAMB may
    camb_connection.add_task(kind="text-to-sound", status="SUCCESS")
    links = CambHook().get_result_links("text-to-sound", [run])
    assert list(links) == [run]
    assert [r.path for r in camb_connection.requests("bulk_result")] == ["/text-to-sound-results"]
    with pytest.raises(Exception, match=f"run {unknown}"):
        CambHook().get_result_links("text-to-sound", [unknown])
    assert camb_connection.requests("result")[-1].path == f"/text-to-sound-result/{unknown}"


def test_dubbing_results_come_in_bulk_in_both_shapes(camb_connection):
    one = finished_runs(camb_connection, "dub", 1, target_languages=["fr-fr"])
    two = finished_runs(camb_connection, "dub", 1, target_languages=["fr-fr", "de-de"])
    results = CambHook().get_dub_results(one + two)
    assert list(results[one[0]]) == [None]
    assert sorted(results[two[0]]) == ["de-de", "fr-fr"]
    assert [r.path for r in camb_connection.requests("bulk_result")] == ["/dubbing-results"]


def test_a_bulk_request_is_asked_again_after_a_server_error_it_only_reads(camb_connection):
    runs = finished_runs(camb_connection, "tts", 2)
    camb_connection.inject("http_503", endpoint="bulk_result")
    assert sorted(CambHook().get_result_links("tts", runs)) == sorted(runs)
    assert [r.status for r in camb_connection.requests("bulk_result")] == [503, 200]


def test_the_stand_in_refuses_run_ids_that_are_not_integers(camb_connection):
    from airflow_provider_camb.api import ApiRequest
    from airflow_provider_camb.exceptions import CambValidationError

    with pytest.raises(CambValidationError, match="run_ids"):
        CambHook()._send(ApiRequest("POST", "/tts-results", "bulk", json={"run_ids": ["x"]}))


# --- the batch wait -------------------------------------------------------------------------------


def run_trigger(trigger):
    import asyncio

    async def first_event():
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    return asyncio.run(first_event())


def test_in_a_triggerer_the_batch_wait_holds_its_event_until_resume_margin_after_the_deferral(camb_connection):
    import time

    from airflow_provider_camb.triggers.camb_batch import CambBatchTrigger

    # One task is done at once; "enough" is one. Held for 3 s after the deferral (apache/airflow#72716), the
    # wait takes along the second, done at its second read, instead of firing with the first alone.
    camb_connection.configure(pending_reads=1)
    done, second = camb_connection.add_task(kind="tts", status="SUCCESS"), camb_connection.add_task(kind="tts")
    trigger = CambBatchTrigger(
        "tts", [done, second], poll_interval=0.1, enough=1, deferred_at=time.time(), resume_margin=3
    )
    trigger.trigger_id = 1  # as the triggerer sets it
    event = run_trigger(trigger)
    assert sorted(outcome["task_id"] for outcome in event["finished"]) == sorted([done, second])


def test_the_batch_wait_holds_for_the_margin_after_the_deferral_also_when_all_are_done(camb_connection, capfd):
    import time

    from airflow_provider_camb.triggers.camb_batch import CambBatchTrigger

    task = camb_connection.add_task(kind="tts", status="SUCCESS")
    trigger = CambBatchTrigger("tts", [task], poll_interval=0.1, deferred_at=time.time(), resume_margin=1)
    trigger.trigger_id = 1
    event = run_trigger(trigger)
    assert [outcome["task_id"] for outcome in event["finished"]] == [task]
    assert "Resuming the Airflow task on a worker in" in logged(capfd)


def test_outside_a_triggerer_the_batch_wait_never_holds(camb_connection, capfd):
    import time

    from airflow_provider_camb.triggers.camb_batch import CambBatchTrigger

    task = camb_connection.add_task(kind="tts", status="SUCCESS")
    trigger = CambBatchTrigger("tts", [task], poll_interval=0.1, deferred_at=time.time(), resume_margin=3600)
    event = run_trigger(trigger)  # dag.test() or deferrable=False: no scheduler to race (3600 s would time out)
    assert [outcome["task_id"] for outcome in event["finished"]] == [task]
    output = logged(capfd)
    assert "CAMB batch of" in output and "Resuming the Airflow task on a worker" not in output


def test_the_batch_wait_fires_once_enough_tasks_finished_and_leaves_the_rest_for_the_next(camb_connection):
    from airflow_provider_camb.triggers.camb_batch import CambBatchTrigger

    quick = [camb_connection.add_task(kind="tts", pending_seconds=0.2) for _ in range(2)]
    slow = [camb_connection.add_task(kind="tts", pending_seconds=3600) for _ in range(2)]
    event = run_trigger(CambBatchTrigger("tts", quick + slow, poll_interval=0.1, enough=2, total=10, done=3))
    assert sorted(outcome["task_id"] for outcome in event["finished"]) == sorted(quick)
    assert {outcome["status"] for outcome in event["finished"]} == {"SUCCESS"}
    assert event["pending"] == 2 and event["creates_stopped"] is False


def test_at_its_deadline_the_batch_wait_reports_every_task_still_pending(camb_connection):
    import time

    from airflow_provider_camb.triggers.camb_batch import CambBatchTrigger

    ids = [camb_connection.add_task(kind="tts", pending_seconds=3600) for _ in range(3)]
    event = run_trigger(CambBatchTrigger("tts", ids, poll_interval=0.1, deadline=time.time() + 0.5))
    assert sorted(outcome["task_id"] for outcome in event["finished"]) == sorted(ids)
    assert {outcome["outcome"] for outcome in event["finished"]} == {"deadline"}
    assert all("did not finish before the deadline" in outcome["message"] for outcome in event["finished"])
    assert event["pending"] == 0


def test_a_task_the_batch_wait_cannot_read_ends_alone(camb_connection):
    from airflow_provider_camb.triggers.camb_batch import CambBatchTrigger

    known = camb_connection.add_task(kind="tts", pending_seconds=0.2)
    event = run_trigger(CambBatchTrigger("tts", [known, "no-such-task"], poll_interval=0.1))
    by_task = {outcome["task_id"]: outcome for outcome in event["finished"]}
    assert by_task[known]["status"] == "SUCCESS"
    assert (
        by_task["no-such-task"]["outcome"] == "error" and by_task["no-such-task"]["error_type"] == "CambNotFoundError"
    )
