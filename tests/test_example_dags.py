"""The example DAGs import cleanly and run end to end (``dag.test()``) against the stand-in, writing real WAVs."""

from __future__ import annotations

import hashlib
import json
import wave
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_camb.version_compat import AIRFLOW_V_3_1_PLUS as CAN_CHOOSE_BY_EAR
from tests.airflow_harness import AIRFLOW_3, asset_events
from tests.shared import EXAMPLES, assert_deferred, example_source, logged, pending_after_first_check

TEXT_TO_VOICE = EXAMPLES / "example_camb_text_to_voice.py"
BATCH = EXAMPLES / "example_camb_batch_voices.py"
ASSETS = EXAMPLES / "example_camb_voice_assets.py"
DESIGN_KEEP_SPEAK = EXAMPLES / "example_camb_design_keep_speak.py"
AUDIOBOOK = EXAMPLES / "example_camb_batch_audiobook.py"
ALL_EXAMPLES = [TEXT_TO_VOICE, BATCH, DESIGN_KEEP_SPEAK, ASSETS, AUDIOBOOK]


def local(path: str) -> Path:
    return Path(path.removeprefix("file://"))


def assert_real_preview(item: dict[str, Any], folder: Path) -> None:
    """The listed file exists under ``folder``, matches its size and digest, and is a playable WAV."""
    path = local(item["path"])
    assert path.is_relative_to(folder)
    data = path.read_bytes()
    assert len(data) == item["bytes"]
    assert hashlib.sha256(data).hexdigest() == item["sha256"]
    with wave.open(str(path), "rb") as audio:
        assert audio.getnchannels() >= 1
        assert audio.getframerate() > 0
        assert audio.getnframes() / audio.getframerate() > 0.5


def _dagbag(folder: Path) -> Any:
    """A DagBag parsed from the files only (examples off in both major versions)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2
        from airflow.models.dagbag import DagBag

        return DagBag(dag_folder=str(folder), include_examples=False, read_dags_from_db=False)
    return DagBag(dag_folder=str(folder))


def test_the_example_dags_import_without_errors() -> None:
    bag = _dagbag(EXAMPLES)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {path.stem for path in ALL_EXAMPLES}
    for dag_id in bag.dag_ids:
        dag = bag.dags[dag_id]
        assert "example" in dag.tags
        assert dag.doc_md
        schedule = "AssetTriggeredTimetable" if AIRFLOW_3 else "DatasetTriggeredTimetable"
        expected = schedule if dag_id == "example_camb_voice_assets" else "NullTimetable"  # else manual runs only
        assert type(dag.timetable).__name__ == expected


def test_the_text_to_voice_example_downloads_real_audio_and_keeps_no_voice(run_dag, camb_connection, tmp_path):
    result = run_dag.run(
        example_source(TEXT_TO_VOICE, "example_text_to_voice_default"), run_conf={"destination": str(tmp_path)}
    )

    assert result.state == "success"
    assert result.task_states == {
        "create_voice": "success",
        "wait_for_voice": "success",
        "download_previews": "success",
    }
    downloads = result.xcom("download_previews")
    assert len(downloads) == 2
    for item in downloads:
        assert_real_preview(item, tmp_path)
    assert camb_connection.requests("custom_voice") == []


def test_without_a_destination_the_previews_go_to_the_camb_voice_folder_variable(
    run_dag, camb_connection, tmp_path, monkeypatch
):
    monkeypatch.setenv("AIRFLOW_VAR_CAMB_VOICE_FOLDER", str(tmp_path))
    result = run_dag.run(example_source(TEXT_TO_VOICE, "example_text_to_voice_variable"))

    assert result.state == "success"
    for item in result.xcom("download_previews"):
        assert_real_preview(item, tmp_path)


def test_the_batch_example_maps_one_wait_per_voice_and_lists_every_preview(run_dag, camb_connection, tmp_path, capfd):
    pending_after_first_check(camb_connection, 0.5)  # so each design finds its task PENDING and defers
    result = run_dag.run(example_source(BATCH, "example_batch_voices"), run_conf={"destination": str(tmp_path)})

    assert result.state == "success"
    for task in ("design", "download_previews"):
        assert [result.task_states[f"voice.{task}[{i}]"] for i in range(3)] == ["success"] * 3
    camb_task_ids = result.xcom("voice.design", "task_id")
    assert len(set(camb_task_ids)) == 3
    logs = logged(capfd)
    for camb_task_id in camb_task_ids:  # each design waited in the triggerer
        assert_deferred(logs, camb_task_id)
    run_ids = result.xcom("voice.design")
    assert len(set(run_ids)) == 3
    downloads = result.xcom("voice.download_previews")
    assert [len(files) for files in downloads] == [2, 2, 2]
    for index, files in enumerate(downloads):
        for item in files:
            assert_real_preview(item, tmp_path / f"voice_{index}")
    listed = result.xcom("list_previews")
    assert sorted(listed) == sorted(item["path"] for files in downloads for item in files)
    assert len(camb_connection.requests("create")) == 3


def triggering_events_name() -> str:
    """The context key under which this Airflow hands a run its triggering asset (dataset) events."""
    if AIRFLOW_3:
        from airflow.sdk.definitions.context import Context

        assert "triggering_asset_events" in Context.__annotations__
        return "triggering_asset_events"
    from airflow.utils.context import KNOWN_CONTEXT_KEYS

    assert "triggering_dataset_events" in KNOWN_CONTEXT_KEYS
    return "triggering_dataset_events"


def test_the_assets_example_lists_what_each_download_announced_in_its_asset_event(run_dag, camb_connection, tmp_path):
    source = example_source(TEXT_TO_VOICE, "example_text_to_voice_assets")
    result = run_dag.run(source, register_assets=True, run_conf={"destination": str(tmp_path)})
    ((asset, task_id, extra),) = asset_events(result.dag_id, result.run_id)
    assert (asset, task_id) == ("camb_voice_previews", "download_previews")

    downstream = _dagbag(EXAMPLES).dags["example_camb_voice_assets"]
    events = {asset: [SimpleNamespace(extra=extra)]}
    listed = downstream.get_task("list_new_previews").python_callable(**{triggering_events_name(): events})

    run_id = result.xcom("wait_for_voice")
    downloads = result.xcom("download_previews")
    assert listed == [
        {"camb_run_id": run_id, "path": item["path"], "sha256": item["sha256"], "bytes": item["bytes"]}
        for item in downloads
    ]
    for item in downloads:
        assert_real_preview(item, tmp_path)


@pytest.mark.parametrize("path", ALL_EXAMPLES, ids=lambda p: p.stem)
def test_each_example_explains_its_connection(path: Path) -> None:
    doc = path.read_text().split('"""')[1]
    assert "camb_default" in doc
    assert "AIRFLOW_CONN_CAMB_DEFAULT" in doc or "API key" in doc


def test_design_keep_speak_speaks_with_the_voice_it_kept(run_dag, camb_connection, tmp_path, capfd):
    pending_after_first_check(camb_connection, 0.5)  # so design_voice and speak find their task PENDING
    result = run_dag.run(
        example_source(DESIGN_KEEP_SPEAK, "example_design_keep_speak"),
        run_conf={"destination": tmp_path.as_uri(), "choose": "first"},  # unattended: nobody is asked
    )

    assert result.state == "success"
    assert set(result.task_states.values()) == {"success"}
    assert ("choose_voice" in result.task_states) == CAN_CHOOSE_BY_EAR
    output = logged(capfd)
    for task in ("design_voice", "speak"):  # both wait in the triggerer (the DAG's default_args)
        assert_deferred(output, result.xcom(task, "task_id"))
    assert len(camb_connection.requests("create", kind="text-to-voice")) == 1  # also when resumed
    voice_id = result.xcom("keep_voice")
    (kept,) = camb_connection.requests("custom_voice")
    assert kept.json["file_sha256"] == result.xcom("download_previews")[0]["sha256"]
    (spoken,) = camb_connection.requests("create", kind="tts")
    assert spoken.json["voice_id"] == voice_id
    assert spoken.json["language"] == 1
    speech = result.xcom("save_speech")
    assert local(speech["path"]) == tmp_path / f"camb_speech_run_{result.xcom('speak')}.wav"
    assert_real_preview(speech, tmp_path)
    for link in camb_connection.requests("preview"):
        assert link.query["token"] not in output


def test_the_audiobook_example_speaks_every_line_of_its_file_and_writes_the_manifest(
    run_dag, camb_connection, tmp_path, monkeypatch
):
    camb_connection.configure(pending_seconds=0.5)
    lines = tmp_path / "chapter.jsonl"
    lines.write_text('{"key": "p1", "text": "First line."}\n{"key": "p2", "text": "Second line.", "voice_id": 8}\n')
    result = run_dag.run(
        example_source(AUDIOBOOK, "example_batch_audiobook"),
        run_conf={"destination": str(tmp_path), "lines_uri": str(lines), "voice_id": 7},
    )

    assert result.state == "success"
    folder = tmp_path / "audiobook"
    report = result.xcom("report")
    assert report == {
        "manifest": str(folder / "camb_batch_speak_chapter.manifest.jsonl"),
        "succeeded": 2,
        "failed": 0,
        "skipped": 0,
    }
    sent = camb_connection.requests("create", kind="tts")
    assert sorted((r.json["text"], r.json["voice_id"]) for r in sent) == [("First line.", 7), ("Second line.", 8)]
    manifest = [json.loads(line) for line in Path(report["manifest"]).read_text().splitlines()]
    assert [entry["key"] for entry in manifest] == ["p1", "p2"]
    for entry in manifest:
        (file,) = entry["files"]
        assert_real_preview({**file, "path": file["path"]}, folder)


def test_the_audiobook_example_has_a_sample_chapter_of_its_own(run_dag, camb_connection, tmp_path, monkeypatch):
    camb_connection.configure(pending_seconds=0.5)
    result = run_dag.run(
        example_source(AUDIOBOOK, "example_batch_audiobook_sample"), run_conf={"destination": str(tmp_path)}
    )
    assert result.xcom("report")["succeeded"] == 4
    assert sorted(p.name for p in (tmp_path / "audiobook").glob("*.wav")) == [f"ch01-000{i}.wav" for i in (1, 2, 3, 4)]
