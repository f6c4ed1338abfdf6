"""Operators for CAMB.AI text to speech: speak a text with a voice, then save the speech.

``CambTextToSpeechOperator`` starts a ``tts`` task (and can wait for it); its ``voice_id`` takes the
XCom of ``CambCreateCustomVoiceOperator``, so design -> keep -> speak is wired with ``.output``.
``CambTranslatedTextToSpeechOperator`` speaks a text translated into another language.
``CambTextToSpeechResultOperator`` saves the speech of a run (both kinds share ``/tts-result``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from airflow_provider_camb.kinds import TRANSLATED_TTS, TTS
from airflow_provider_camb.operators._base import CambCreatingOperator
from airflow_provider_camb.operators.camb_media_result import CambMediaResultOperator
from airflow_provider_camb.operators.camb_task import CambTaskOperator
from airflow_provider_camb.operators.translation import _TranslationOptions

__all__ = ["CambTextToSpeechOperator", "CambTextToSpeechResultOperator", "CambTranslatedTextToSpeechOperator"]


class _TtsOptions(CambCreatingOperator):
    """The optional fields of a text-to-speech task (``kinds.tts.TtsOptions``), taken by
    ``CambTextToSpeechOperator`` and, as every item's defaults, by ``CambTextToSpeechBatchOperator``."""

    def __init__(self, *, gender: int | str | None = None, age: int | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keep_fields(locals(), self.kind.fields)


class CambTextToSpeechOperator(_TtsOptions, CambTaskOperator):
    """Start a CAMB.AI text-to-speech task (``POST /tts``); return the CAMB task id, or the run id when waiting.

    Input is checked before anything is sent: empty or over-long text, and a voice id, language,
    gender, age or folder id that is not a whole number (digit strings from templates pass) fail with
    ``CambInputError`` and no request. Waiting (``wait_for_completion``, ``deferrable``,
    ``end_from_trigger``, ``poll_interval``, ``timeout``) works as in every ``CambTaskOperator``.

    :param text: What to say (templated).
    :param voice_id: The voice: a library voice id or a kept voice, e.g. ``CambCreateCustomVoiceOperator(...).output``
        (templated).
    :param language: CAMB's language id of the text, e.g. 1 for English (United States) (templated).
    :param gender: Optional CAMB gender code (templated).
    :param age: Optional age of the speaker (templated).
    """

    kind = TTS
    template_fields: Sequence[str] = (
        "text",
        "voice_id",
        "language",
        "gender",
        "age",
        *CambTaskOperator.project_fields,
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"text": "txt"}

    def __init__(self, *, text: str, voice_id: int | str, language: int | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keep_fields(locals(), self.kind.fields)


class CambTranslatedTextToSpeechOperator(_TranslationOptions, CambTaskOperator):
    """Start a CAMB.AI translated text-to-speech task (``POST /translated-tts``): ``text`` spoken in another language.

    Checked and waited on like ``CambTextToSpeechOperator``; its speech is saved by ``CambTextToSpeechResultOperator``.

    :param text: What to say, in ``source_language`` (templated).
    :param voice_id: The voice id (templated).
    :param source_language: CAMB's language id of the text (templated).
    :param target_language: CAMB's language id to speak in (templated).
    :param gender: Optional CAMB gender code (templated).
    :param age: Optional age of the speaker (templated).
    :param formality: Optional CAMB formality code (templated).
    :param chosen_dictionaries: Optional list of CAMB dictionary ids.
    """

    kind = TRANSLATED_TTS
    template_fields: Sequence[str] = (
        "text",
        "voice_id",
        "source_language",
        "target_language",
        "gender",
        "age",
        "formality",
        *CambTaskOperator.project_fields,
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"text": "txt"}

    def __init__(
        self,
        *,
        text: str,
        voice_id: int | str,
        source_language: int | str,
        target_language: int | str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.keep_fields(locals(), self.kind.fields)


class CambTextToSpeechResultOperator(CambMediaResultOperator):
    """Save the speech of a CAMB text-to-speech (or translated text-to-speech) run: ``GET /tts-result/{run_id}``.

    Streams the audio into ``destination`` as ``camb_speech_run_<run_id>.<ext>`` (the extension from
    the Content-Type), whole or not at all, and returns ``{"path", "bytes", "sha256", "content_type"}``.
    See ``CambMediaResultOperator`` for the parameters.
    """

    kind = TTS
