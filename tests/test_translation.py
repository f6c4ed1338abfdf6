"""Translation over real HTTP to the stand-in: input checks, create, wait (worker or triggerer), save the texts."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from airflow_provider_camb.exceptions import CambConnectionError, CambInputError, CambResponseError
from airflow_provider_camb.operators.translation import CambTranslationOperator, CambTranslationResultOperator
from tests.shared import context, finished_run, result_of, sha256_of

TEXTS = ["Hello from Airflow.", "Goodbye."]


translate = functools.partial(
    CambTranslationOperator, task_id="translate", texts=TEXTS, source_language="en-us", target_language="fr-fr"
)


save = functools.partial(result_of, CambTranslationResultOperator)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"texts": "Hello."}, "texts must be a non-empty list of strings"),
        ({"texts": []}, "texts must be a non-empty list of strings"),
        ({"texts": ["Hello.", "\u200b"]}, r"texts\[1\] must not be empty"),
        ({"texts": ["x" * 10_001]}, "at most 10000"),
        ({"source_language": "English"}, "source_language must be a CAMB language id"),
        ({"target_language": "en-us"}, "source_language and target_language are both"),
        ({"gender": "male"}, "gender must be a whole number"),
        ({"chosen_dictionaries": [1, 0]}, r"chosen_dictionaries\[1\] must be a whole number"),
        ({"folder_id": "inbox"}, "folder_id must be a whole number"),
    ],
)
def test_bad_translation_input_is_refused_before_any_request(camb_connection, options, message):
    with pytest.raises(CambInputError, match=message):
        translate(**options).execute(context())
    assert camb_connection.request_count() == 0


def test_bad_result_input_is_refused_before_any_request(camb_connection, tmp_path):
    with pytest.raises(CambInputError, match="run id must be a whole number"):
        save("7/../8", tmp_path)
    assert camb_connection.request_count() == 0


def test_texts_are_translated_waited_for_and_saved_in_order(camb_connection, tmp_path):
    ctx = context()
    run_id = translate(formality=2, chosen_dictionaries=["3"], wait_for_completion=True, poll_interval=0.1).execute(ctx)
    (sent,) = camb_connection.requests("create")
    assert (sent.path, sent.json) == (
        "/translate",
        {
            "texts": TEXTS,
            "source_language": "en-us",
            "target_language": "fr-fr",
            "formality": 2,
            "chosen_dictionaries": [3],
        },
    )
    saved = save(run_id, tmp_path)
    path = tmp_path / f"camb_translation_run_{run_id}.json"
    assert Path(saved["path"]) == path and saved["content_type"] == "application/json"
    assert json.loads(path.read_text()) == {"texts": [f"[fr-fr] {text}" for text in TEXTS]}
    assert saved["bytes"] == path.stat().st_size and sha256_of(path) == saved["sha256"]
    (result,) = camb_connection.requests("result")
    assert result.path == f"/translation-result/{run_id}"


def test_a_result_cut_off_on_every_try_leaves_no_file(camb_connection, tmp_path):
    run_id = finished_run(camb_connection, "translate", texts=TEXTS, target_language="fr-fr")
    camb_connection.inject("truncate", endpoint="result", times=3)  # every try (1 + 2 retries)
    with pytest.raises(CambConnectionError, match="fetching the result of CAMB translation run"):
        save(run_id, tmp_path)
    assert camb_connection.request_count("result") == 3
    assert list(tmp_path.iterdir()) == []


def test_a_result_in_another_shape_is_refused_and_leaves_no_file(camb_connection, tmp_path):
    run_id = finished_run(camb_connection, "translate", texts=TEXTS, target_language="fr-fr")
    camb_connection.inject("json_body", endpoint="result", payload={"texts": "Bonjour."})
    with pytest.raises(CambResponseError):
        save(run_id, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "in the worker"])
def test_translate_and_save_in_a_dag(create_and_save, camb_connection, tmp_path, deferrable):
    translation = f"texts={TEXTS!r}, source_language='en-us', target_language=\"{{{{ 'de-de' }}}}\""
    result, run_id, _ = create_and_save(CambTranslationOperator, CambTranslationResultOperator, translation, deferrable)
    (sent,) = camb_connection.requests("create")
    assert sent.json["target_language"] == "de-de"  # templated
    saved = result.xcom("save")
    assert Path(saved["path"]) == tmp_path / f"camb_translation_run_{run_id}.json"
    assert json.loads(Path(saved["path"]).read_text()) == {"texts": [f"[de-de] {text}" for text in TEXTS]}
