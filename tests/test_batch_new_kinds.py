"""The batch operators of translation and transcription in real DAGs (``dag.test()``) against the stand-in.

Each item's CAMB task is created exactly once, its result comes in bulk and is saved as ``<key>.json``,
byte for byte the document the kind's single result operator saves; bad items are refused before any request.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from airflow_provider_camb._batch_items import check_items, read_items
from airflow_provider_camb.exceptions import CambInputError
from airflow_provider_camb.operators.batch import CambTranscriptionBatchOperator
from airflow_provider_camb.operators.transcription import CambTranscriptionResultOperator
from airflow_provider_camb.operators.translation import CambTranslationResultOperator
from tests.shared import context
from tests.test_batch import assert_whole, manifest_of, run_batch

TRANSLATION = "CambTranslationBatchOperator"
TRANSCRIPTION = "CambTranscriptionBatchOperator"


def catalogue(count: int) -> list[dict[str, object]]:
    return [{"key": f"product-{i:03d}", "texts": [f"Product {i} title.", f"Product {i} text."]} for i in range(count)]


def talks(count: int) -> list[dict[str, object]]:
    return [{"key": f"talk-{i:03d}", "media_url": f"https://media.example.com/talk-{i}.mp3"} for i in range(count)]


def same_as_the_single_result_operator(folder: Path, entry, operator, tmp_path: Path) -> None:
    """The item's one file is byte for byte what the kind's single result operator saves of the same run."""
    (file,) = entry.files
    single = operator(task_id="single", run_id=entry.run_id, destination=str(tmp_path / "single")).execute(context())
    assert (folder / Path(file["path"]).name).read_bytes() == Path(single["path"]).read_bytes()


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "on the worker"])
def test_a_translation_batch_creates_each_item_once_and_saves_each_translation_whole(
    run_dag, camb, tmp_path, deferrable
):
    out = tmp_path / "out"
    items = catalogue(12)
    result = run_batch(
        run_dag, out, operator=TRANSLATION, items=items, source_language="en-us", target_language="fr-fr",
        formality=2, max_in_flight=5, deferrable=deferrable, resume_margin=0,
    )  # fmt: skip
    assert result.task_states == {"batch": "success"}
    assert result.xcom("batch") == {
        "manifest": str(out / "camb_batch_batch.manifest.jsonl"),
        "succeeded": 12,
        "failed": 0,
        "skipped": 0,
    }
    sent = Counter(r.json["texts"][0] for r in camb.requests("create"))
    assert sent == {f"Product {i} title.": 1 for i in range(12)}
    assert camb.requests("create")[0].json == {
        "texts": ["Product 0 title.", "Product 0 text."],
        "source_language": "en-us",
        "target_language": "fr-fr",
        "formality": 2,
    }
    entries = manifest_of(out)
    assert sorted(entries) == [item["key"] for item in items]
    assert {entry.status for entry in entries.values()} == {"succeeded"}
    assert all([Path(f["path"]).name for f in e.files] == [f"{e.key}.json"] for e in entries.values())
    assert_whole(out, entries.values())
    assert json.loads((out / "product-003.json").read_text()) == {
        "texts": ["[fr-fr] Product 3 title.", "[fr-fr] Product 3 text."]
    }
    assert {r.path for r in camb.requests("bulk_result")} == {"/translation-results"}
    assert camb.requests("result") == []  # every translation came in bulk
    same_as_the_single_result_operator(out, entries["product-003"], CambTranslationResultOperator, tmp_path)


def test_a_bad_translation_item_fails_the_task_before_any_request_naming_its_index_and_key(
    run_dag, camb, tmp_path, capfd
):
    items = [*catalogue(3), {"key": "same", "texts": ["Bonjour."], "target_language": "en-us"}, {"texts": "Hi."}]
    languages = {"source_language": "en-us", "target_language": "fr-fr"}
    result = run_batch(run_dag, tmp_path, operator=TRANSLATION, items=items, retries=1, **languages)
    assert result.task_states == {"batch": "failed"} and result.tries["batch"] == 1
    assert camb.requests() == []
    assert not (tmp_path / "camb_batch_batch.manifest.jsonl").exists()
    message = capfd.readouterr().out
    assert "CambInputError: 2 of 5 batch items are refused; nothing was sent" in message
    assert "Item 3 (key 'same'): source_language and target_language are both 'en-us'" in message
    assert "Item 4: texts must be a non-empty list of strings" in message


def test_a_transcription_batch_saves_each_transcript_as_the_single_result_operator_does(run_dag, camb, tmp_path):
    out = tmp_path / "out"
    result = run_batch(run_dag, out, operator=TRANSCRIPTION, items=talks(6), language="auto", max_in_flight=4)
    assert result.xcom("batch")["succeeded"] == 6
    sent = Counter(r.json["media_url"] for r in camb.requests("create"))
    assert sent == {f"https://media.example.com/talk-{i}.mp3": 1 for i in range(6)}
    assert camb.requests("create")[0].json == {"language": "auto", "media_url": "https://media.example.com/talk-0.mp3"}
    entries = manifest_of(out)
    assert_whole(out, entries.values())
    assert json.loads((out / "talk-002.json").read_text())["text"] == "Hello."
    assert {r.path for r in camb.requests("bulk_result")} == {"/transcription-results"}
    assert camb.requests("result") == []
    same_as_the_single_result_operator(out, entries["talk-002"], CambTranscriptionResultOperator, tmp_path)


def test_a_rerun_of_a_transcription_batch_over_the_same_destination_creates_nothing(run_dag, camb, tmp_path):
    items = [{"media_url": item["media_url"]} for item in talks(4)]  # keys from the inputs
    run_batch(run_dag, tmp_path, operator=TRANSCRIPTION, items=items, language=1)
    first = manifest_of(tmp_path)
    assert len(first) == 4  # a form kind's default keys differ by their inputs
    (tmp_path / f"{sorted(first)[0]}.json").unlink()
    camb.clear_requests()
    result = run_batch(run_dag, tmp_path, operator=TRANSCRIPTION, items=items, language=1)
    assert result.xcom("batch")["succeeded"] == 4
    assert camb.requests("create") == [] and camb.requests("status") == []
    assert len(camb.requests("bulk_result")) == 1  # only the missing file's run is asked again
    assert_whole(tmp_path, manifest_of(tmp_path).values())


def test_form_items_without_keys_get_keys_from_their_inputs():
    def build(fields):
        return CambTranscriptionBatchOperator(task_id="t", destination=".").item_request(fields)

    raw = read_items(
        [{"media_url": "https://a.example.com/1.mp3"}, {"media_url": "https://a.example.com/2.mp3"}], None, None
    )
    fields = ("media_url", "language")
    first, second = check_items(raw, kind="transcribe", fields=fields, defaults={"language": 1}, build=build)
    assert first.key != second.key
    with pytest.raises(CambInputError, match="inputs are identical"):
        check_items([*raw, raw[0]], kind="transcribe", fields=fields, defaults={"language": 1}, build=build)
