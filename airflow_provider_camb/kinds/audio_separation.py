"""Audio separation: split a media file into its voice and its background (``POST /audio-separation``, a form
with the file); the result is a link to each of the two stems."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_camb.api import ApiRequest, result_link, result_what, unreadable
from airflow_provider_camb.kinds._fields import ProjectFields, create_form_request
from airflow_provider_camb.kinds._kind import CambKind


class AudioSeparationFields(ProjectFields, total=False):
    """The create fields of an audio separation task: the project's only; the media is the uploaded file part
    (``CambAudioSeparationOperator(media_file=...)``), as in the SDK's ``create_audio_separation``."""


@dataclass(frozen=True)
class SeparatedAudio:
    """The two stems of a run (``GetAudioSeparationResultOut``). Bearer links: never shown beyond their host."""

    foreground_url: str = field(repr=False)  # the voice
    background_url: str = field(repr=False)  # everything else


def audio_separation_request(fields: Mapping[str, Any]) -> ApiRequest:
    """``POST /audio-separation`` as a form of the project fields; the media goes as its file part."""
    return create_form_request(AUDIO_SEPARATION, {}, fields)


def parse_separated_audio(body: Any, kind: CambKind, run_id: int) -> SeparatedAudio:
    """The stems' links from ``{"foreground_audio_url", "background_audio_url"}``."""
    what = result_what(kind, run_id)
    if not isinstance(body, dict):
        raise unreadable(what, "expected a JSON object")
    return SeparatedAudio(
        foreground_url=result_link(body.get("foreground_audio_url"), what, "a foreground_audio_url"),
        background_url=result_link(body.get("background_audio_url"), what, "a background_audio_url"),
    )


AUDIO_SEPARATION = CambKind(
    "audio-separation",
    "audio separation",
    "/audio-separation",
    "audio-separation-result",
    "media file",
    media="stems",
    create_fields=AudioSeparationFields,
    build=audio_separation_request,
    upload="media_file",
    parse_result=parse_separated_audio,
)
