"""A person's choice of preview: what ``CambChooseVoiceOperator`` returns and ``CambCreateCustomVoiceOperator`` keeps.

Importable on every Airflow (the choice operator itself needs 3.1+), so the keep operator reads a
choice without importing human-in-the-loop code.
"""

from __future__ import annotations

from typing import Any, TypedDict

from airflow.providers.common.compat.sdk import AirflowSkipException

from airflow_provider_camb.exceptions import CambInputError

#: The option that keeps no preview.
NONE_OF_THESE = "None of these"


class VoiceChoice(TypedDict):
    """The answer: which preview (from 0; ``None`` for "None of these") and the kept voice's fields."""

    preview: int | None
    option: str
    file: dict[str, Any] | None
    voice_name: str
    gender: int
    description: str | None
    responded_by: str | None


def preview_option(index: int) -> str:
    """The option that keeps preview ``index`` (from 0): ``"Preview 1"``, ``"Preview 2"``, ..."""
    return f"Preview {index + 1}"


def kept_preview(choice: object) -> VoiceChoice:
    """The choice to keep; "None of these" skips the task (``AirflowSkipException``), bad input fails it."""
    if not isinstance(choice, dict) or not {"preview", "file", "voice_name", "gender"} <= choice.keys():
        raise CambInputError(
            "choice must be the return value of CambChooseVoiceOperator (e.g. choice=choose.output), "
            f"got {str(choice)[:200]!r}."
        )
    if choice["preview"] is None:
        who = choice.get("responded_by") or "the person asked"
        raise AirflowSkipException(f"{who} chose {NONE_OF_THESE!r}: no preview is kept as a voice.")
    file = choice["file"]
    if not isinstance(file, dict) or not isinstance(file.get("path"), str):
        raise CambInputError(f"The chosen preview names no file: {str(file)[:200]!r}.")
    return choice  # type: ignore[return-value]
