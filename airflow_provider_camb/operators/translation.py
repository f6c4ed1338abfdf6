"""Operators for CAMB.AI translation: translate texts into another language, then save the translations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_camb.kinds.translate import TRANSLATE
from airflow_provider_camb.operators._base import CambCreatingOperator
from airflow_provider_camb.operators.camb_json_result import CambJsonResultOperator
from airflow_provider_camb.operators.camb_task import CambTaskOperator

__all__ = ["CambTranslationOperator", "CambTranslationResultOperator"]


class _TranslationOptions(CambCreatingOperator):
    """The optional fields of a translation (``kinds.translate.TranslateOptions``), which a translated
    text-to-speech task takes too; taken by both kinds' single operators and, as every item's defaults, by
    their batch operators."""

    def __init__(
        self,
        *,
        age: int | str | None = None,
        formality: int | str | None = None,
        gender: int | str | None = None,
        chosen_dictionaries: list[int | str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.keep_fields(locals(), self.kind.fields)


class CambTranslationOperator(_TranslationOptions, CambTaskOperator):
    """Start a CAMB.AI translation task (``POST /translate``); return the task id, or the run id when waiting.

    Input is checked before anything is sent: no texts or an empty one, a language that is neither a
    CAMB id nor a locale tag, the same language on both sides, codes that are not whole numbers.
    Waiting works as in every ``CambTaskOperator``.

    :param texts: The texts to translate, in order (templated).
    :param source_language: Their language: a CAMB language id or a locale tag such as ``en-us`` (templated).
    :param target_language: The language to translate into (templated).
    :param age: Optional speaker age, which CAMB uses to pick wording (templated).
    :param formality: Optional CAMB formality code (templated).
    :param gender: Optional CAMB gender code (templated).
    :param chosen_dictionaries: Optional CAMB dictionary ids to apply (templated).
    """

    kind = TRANSLATE
    template_fields: Sequence[str] = (
        "texts",
        "source_language",
        "target_language",
        "age",
        "formality",
        "gender",
        "chosen_dictionaries",
        *CambTaskOperator.project_fields,
    )
    ui_color = "#e8f0d8"
    described_by = "texts"

    def __init__(
        self,
        *,
        texts: list[str],
        source_language: int | str,
        target_language: int | str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.keep_fields(locals(), self.kind.fields)


class CambTranslationResultOperator(CambJsonResultOperator):
    """Save the translations of a CAMB translation run: ``GET /translation-result/{run_id}``.

    Writes ``{"texts": [...]}`` (in the order they were sent) to ``camb_translation_run_<run_id>.json`` in
    ``destination``, whole or not at all. See ``CambJsonResultOperator``.
    """

    kind = TRANSLATE

    @staticmethod
    def document(result: Any) -> Any:
        return {"texts": result}
