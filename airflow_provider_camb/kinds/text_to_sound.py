"""Text to sound: a sound effect or music from a prompt (``POST /text-to-sound``); the result is the sound."""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from airflow_provider_camb.api import ApiRequest
from airflow_provider_camb.exceptions import CambInputError
from airflow_provider_camb.kinds._fields import ProjectFields, create_request, text
from airflow_provider_camb.kinds._kind import CambKind
from airflow_provider_camb.kinds._media import MEDIA_OUTPUT_TYPES, parse_media_result

#: The longest sound CAMB is asked for, in seconds (its default is 8; it documents no maximum).
MAX_SOUND_SECONDS = 600.0


class TextToSoundOptions(ProjectFields, total=False):
    """The optional create fields of a text-to-sound task."""

    duration: float | str  # seconds
    audio_type: str  # "sound" or "music"


class TextToSoundFields(TextToSoundOptions, total=False):
    """The create fields of a text-to-sound task (``prompt`` is required)."""

    prompt: str


def _seconds(duration: object) -> float:
    seconds: float | None = None
    if isinstance(duration, (int, float)) and not isinstance(duration, bool):
        seconds = float(duration)
    elif isinstance(duration, str):
        with suppress(ValueError):
            seconds = float(duration)
    if seconds is None or not math.isfinite(seconds) or not 0 < seconds <= MAX_SOUND_SECONDS:
        raise CambInputError(
            f"duration must be a positive number of seconds, at most {MAX_SOUND_SECONDS:g}, got {duration!r}."
        )
    return seconds


def text_to_sound_request(fields: Mapping[str, Any]) -> ApiRequest:
    """``POST /text-to-sound``: a sound effect or music from ``prompt``; ``duration`` in seconds."""
    body: dict[str, Any] = {"prompt": text("prompt", fields.get("prompt"))}
    if fields.get("duration") is not None:
        body["duration"] = _seconds(fields["duration"])
    audio_type = fields.get("audio_type")
    if audio_type is not None:
        if not isinstance(audio_type, str) or not audio_type.strip():
            raise CambInputError(
                f"audio_type must be a non-empty string such as 'sound' or 'music', got {audio_type!r}."
            )
        body["audio_type"] = audio_type.strip()
    return create_request(TEXT_TO_SOUND, body, fields)


TEXT_TO_SOUND = CambKind(
    "text-to-sound",
    "text-to-sound",
    "/text-to-sound",
    "text-to-sound-result",
    "prompt",
    MEDIA_OUTPUT_TYPES,
    "sound",
    create_fields=TextToSoundFields,
    build=text_to_sound_request,
    parse_result=parse_media_result,
)
