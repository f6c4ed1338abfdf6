"""Operators for CAMB.AI text to sound: make a sound effect or music from a prompt, then save it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from airflow_provider_camb.kinds import TEXT_TO_SOUND
from airflow_provider_camb.operators._base import CambCreatingOperator
from airflow_provider_camb.operators.camb_media_result import CambMediaResultOperator
from airflow_provider_camb.operators.camb_task import CambTaskOperator

__all__ = ["CambTextToSoundOperator", "CambTextToSoundResultOperator"]


class _TextToSoundOptions(CambCreatingOperator):
    """The optional fields of a text-to-sound task (``kinds.text_to_sound.TextToSoundOptions``), taken by
    ``CambTextToSoundOperator`` and, as every item's defaults, by ``CambTextToSoundBatchOperator``."""

    def __init__(self, *, duration: float | str | None = None, audio_type: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keep_fields(locals(), self.kind.fields)


class CambTextToSoundOperator(_TextToSoundOptions, CambTaskOperator):
    """Start a CAMB.AI text-to-sound task (``POST /text-to-sound``); return the task id, or the run id when waiting.

    Input is checked before anything is sent: an empty or over-long prompt, a duration that is not a
    positive number of seconds, an empty ``audio_type``. Waiting works as in every ``CambTaskOperator``.

    :param prompt: The sound or music to make (templated).
    :param duration: Optional length in seconds (templated).
    :param audio_type: Optional ``"sound"`` or ``"music"`` (templated).
    """

    kind = TEXT_TO_SOUND
    template_fields: Sequence[str] = (
        "prompt",
        "duration",
        "audio_type",
        *CambTaskOperator.project_fields,
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"prompt": "txt"}
    described_by = "prompt"

    def __init__(self, *, prompt: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keep_fields(locals(), self.kind.fields)


class CambTextToSoundResultOperator(CambMediaResultOperator):
    """Save the sound of a CAMB text-to-sound run: ``GET /text-to-sound-result/{run_id}``.

    Streams the audio into ``destination`` as ``camb_sound_run_<run_id>.<ext>``, whole or not at all, and
    returns ``{"path", "bytes", "sha256", "content_type"}``. See ``CambMediaResultOperator`` for the parameters.
    """

    kind = TEXT_TO_SOUND
