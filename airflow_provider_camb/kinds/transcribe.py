"""Transcription: the segments of speech in a media file or at a media URL (``POST /transcribe``, a form)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_camb.api import ApiRequest, result_what, unreadable
from airflow_provider_camb.kinds._fields import ProjectFields, create_form_request, language, media_url
from airflow_provider_camb.kinds._kind import CambKind


class TranscribeFields(ProjectFields, total=False):
    """The create fields of a transcription task (``language`` is required). The media is at ``media_url``,
    or is the file part the operator uploads (``CambTranscriptionOperator(media_file=...)``)."""

    language: int | str  # a CAMB language id, a locale tag, or "auto" to detect it
    media_url: str


def transcribe_request(fields: Mapping[str, Any]) -> ApiRequest:
    """``POST /transcribe`` as a form: ``language`` and, unless a file part carries the media, ``media_url``."""
    spoken = fields.get("language")
    form: dict[str, Any] = {"language": "auto" if spoken == "auto" else language("language", spoken)}
    if fields.get("media_url") is not None:
        form["media_url"] = media_url("media_url", fields["media_url"])
    return create_form_request(TRANSCRIBE, form, fields)


def parse_transcript(body: Any, kind: CambKind, run_id: int) -> list[dict[str, Any]]:
    """The segments of a run, ``{"start", "end", "text", "speaker"}`` each, from ``{"transcript": [...]}``."""
    what = result_what(kind, run_id)
    segments = body.get("transcript") if isinstance(body, dict) else None
    if not isinstance(segments, list):
        raise unreadable(what, "no transcript list")
    for index, segment in enumerate(segments):
        if not isinstance(segment, dict) or not isinstance(segment.get("text"), str):
            raise unreadable(what, f"transcript segment {index} that is not an object with a text")
    return segments


TRANSCRIBE = CambKind(
    "transcribe",
    "transcription",
    "/transcribe",
    "transcription-result",
    "media and language",
    media="transcript",
    create_fields=TranscribeFields,
    build=transcribe_request,
    upload="media_file",
    parse_result=parse_transcript,
)
