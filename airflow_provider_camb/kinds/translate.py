"""Translation: translate texts from one language into another (``POST /translate``); the result is the texts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_camb.api import ApiRequest, result_what
from airflow_provider_camb.exceptions import CambInputError
from airflow_provider_camb.kinds._fields import (
    ProjectFields,
    create_request,
    language,
    number_list,
    optional_numbers,
    text,
)
from airflow_provider_camb.kinds._kind import CambKind
from airflow_provider_camb.kinds._results import string_list

#: The most texts one translation task is given (CAMB documents no maximum; this keeps a task reviewable).
MAX_TEXTS = 1000


class TranslateOptions(ProjectFields, total=False):
    """The optional create fields of a translation task (the SDK's ``create_translation``)."""

    age: int | str
    formality: int | str  # CAMB's formality code
    gender: int | str  # CAMB's gender code
    chosen_dictionaries: list[int | str]  # CAMB dictionary ids


class TranslateFields(TranslateOptions, total=False):
    """The create fields of a translation task (the first three are required)."""

    texts: list[str]
    source_language: int | str  # a CAMB language id or a locale tag
    target_language: int | str


def translate_request(fields: Mapping[str, Any]) -> ApiRequest:
    """``POST /translate``: translate each of ``texts`` from ``source_language`` into ``target_language``."""
    texts = fields.get("texts")
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)) or not texts:
        raise CambInputError(f"texts must be a non-empty list of strings, got {type(texts).__name__}.")
    if len(texts) > MAX_TEXTS:
        raise CambInputError(f"texts holds {len(texts)} texts; at most {MAX_TEXTS} are sent in one task.")
    body: dict[str, Any] = {
        "texts": [text(f"texts[{index}]", value) for index, value in enumerate(texts)],
        "source_language": language("source_language", fields.get("source_language")),
        "target_language": language("target_language", fields.get("target_language")),
    }
    if body["source_language"] == body["target_language"]:
        raise CambInputError(f"source_language and target_language are both {body['source_language']!r}.")
    optional_numbers(body, fields, "age", "formality", "gender")
    if fields.get("chosen_dictionaries") is not None:
        body["chosen_dictionaries"] = number_list("chosen_dictionaries", fields["chosen_dictionaries"])
    return create_request(TRANSLATE, body, fields)


def parse_translation(body: Any, kind: CambKind, run_id: int) -> list[str]:
    """The translated texts of a run, in the order they were sent: ``{"texts": [...]}`` (``TranslationResult``)."""
    return string_list(body, "texts", result_what(kind, run_id), "texts")


TRANSLATE = CambKind(
    "translate",
    "translation",
    "/translate",
    "translation-result",
    "texts and languages",
    media="translation",
    create_fields=TranslateFields,
    build=translate_request,
    parse_result=parse_translation,
)
