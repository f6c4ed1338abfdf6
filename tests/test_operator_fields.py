"""A kind's optional fields are declared once, for its single and its batch operator: what users still get."""

from __future__ import annotations

import itertools

import pytest
from airflow.exceptions import AirflowException

from airflow_provider_camb.operators.text_to_sound import CambTextToSoundOperator
from airflow_provider_camb.operators.text_to_speech import CambTextToSpeechOperator, CambTranslatedTextToSpeechOperator
from airflow_provider_camb.operators.translation import CambTranslationOperator
from tests.test_batch import run_batch

ids = itertools.count()

MAPPED_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_camb.operators.text_to_speech import CambTextToSpeechOperator
from airflow_provider_camb.operators.translation import CambTranslationOperator

with DAG("{dag_id}", start_date=pendulum.datetime(2024, 1, 1), schedule=None) as dag:
    CambTranslationOperator.partial(
        task_id="translate", source_language="en-us", target_language="fr-fr", formality="{{{{ 1 + 1 }}}}"
    ).expand(texts=[["Hello."], ["Good night."]])
    CambTextToSpeechOperator.partial(task_id="speak", text="Hello.", voice_id=5, language=1).expand(gender=[1, 2])
"""


def test_mapped_single_operators_take_their_options_in_partial_templated_and_map_over_them(run_dag, camb_connection):
    result = run_dag.run(MAPPED_DAG.format(dag_id=f"mapped_options_{next(ids)}"))
    assert set(result.task_states.values()) == {"success"} and len(result.task_states) == 4
    translations = camb_connection.requests("create", kind="translate")
    assert sorted(r.json["texts"][0] for r in translations) == ["Good night.", "Hello."]
    assert {r.json["formality"] for r in translations} == {2}  # an option given to partial, templated
    assert sorted(r.json["gender"] for r in camb_connection.requests("create", kind="tts")) == [1, 2]


REQUIRED = {
    "speech without language": (CambTextToSpeechOperator, {"text": "Hi.", "voice_id": 5}, "language"),
    "translated speech without target": (
        CambTranslatedTextToSpeechOperator,
        {"text": "Hi.", "voice_id": 5, "source_language": 1},
        "target_language",
    ),
    "translation without texts": (CambTranslationOperator, {"source_language": 1, "target_language": 2}, "texts"),
    "sound without prompt": (CambTextToSoundOperator, {"duration": 3}, "prompt"),
}


@pytest.mark.parametrize(("operator", "given", "missing"), REQUIRED.values(), ids=REQUIRED)
def test_a_single_operator_still_requires_its_required_fields(operator, given, missing):
    with pytest.raises((TypeError, AirflowException), match=f"missing keyword argument '{missing}'"):  # 3.x, 2.x
        operator(task_id="single", **given)


def test_the_translated_speech_batch_takes_chosen_dictionaries_as_every_items_default(run_dag, camb, tmp_path):
    items = [{"key": "plain", "text": "Hello."}, {"key": "own", "text": "Bye.", "chosen_dictionaries": [3]}]
    result = run_batch(
        run_dag,
        tmp_path,
        operator="CambTranslatedTextToSpeechBatchOperator",
        items=items,
        voice_id=5,
        source_language=1,
        target_language=2,
        chosen_dictionaries=[7],
    )
    assert result.xcom("batch")["succeeded"] == 2
    sent = {r.json["text"]: r.json["chosen_dictionaries"] for r in camb.requests("create")}
    assert sent == {"Hello.": [7], "Bye.": [3]}  # the operator's own value is the default; an item's own wins
