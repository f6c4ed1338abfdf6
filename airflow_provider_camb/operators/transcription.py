"""Operators for CAMB.AI transcription: transcribe a media file or URL, then save the transcript."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_camb.kinds.transcribe import TRANSCRIBE
from airflow_provider_camb.operators.camb_json_result import CambJsonResultOperator
from airflow_provider_camb.operators.camb_media_task import CambMediaTaskOperator
from airflow_provider_camb.operators.camb_task import CambTaskOperator

__all__ = ["CambTranscriptionOperator", "CambTranscriptionResultOperator"]


class CambTranscriptionOperator(CambMediaTaskOperator):
    """Start a CAMB.AI transcription task (``POST /transcribe``); return the task id, or the run id when waiting.

    The media is either uploaded (``media_file``: a local path or object storage URI) or fetched by
    CAMB (``media_url``), one of them. Input is checked before anything is sent: a language that is
    not a CAMB id, a locale tag or ``"auto"``, a URL that is not public http(s), a missing or too
    large file (see ``CambMediaTaskOperator``). Waiting works as in every ``CambTaskOperator``.

    :param language: The spoken language: a CAMB language id, a locale tag, or ``"auto"`` (templated).
    :param media_url: A public http(s) URL of the media, instead of ``media_file`` (templated).
    """

    kind = TRANSCRIBE
    template_fields: Sequence[str] = ("language", "media_url", "media_file", *CambTaskOperator.project_fields)
    ui_color = "#fde9d9"

    def __init__(self, *, language: int | str, media_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keep_fields(locals(), self.kind.fields)


class CambTranscriptionResultOperator(CambJsonResultOperator):
    """Save the transcript of a CAMB transcription run: ``GET /transcription-result/{run_id}``.

    Writes ``{"text": ..., "segments": [{"start", "end", "text", "speaker"}, ...]}`` (``text``: the segments'
    texts joined by spaces) to ``camb_transcript_run_<run_id>.json``, whole or not at all.
    See ``CambJsonResultOperator``.
    """

    kind = TRANSCRIBE

    @staticmethod
    def document(result: Any) -> Any:
        return {"text": " ".join(segment["text"].strip() for segment in result), "segments": result}
