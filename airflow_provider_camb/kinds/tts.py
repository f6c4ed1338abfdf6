"""Text to speech: speak a text with a voice (``POST /tts``); the result is the speech (``/tts-result``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_camb.api import ApiRequest
from airflow_provider_camb.kinds._fields import ProjectFields, create_request, number, optional_numbers, text
from airflow_provider_camb.kinds._kind import CambKind
from airflow_provider_camb.kinds._media import MEDIA_OUTPUT_TYPES, parse_media_result


class TtsOptions(ProjectFields, total=False):
    """The optional create fields of a text-to-speech task."""

    gender: int | str  # CAMB's gender code
    age: int | str


class TtsFields(TtsOptions, total=False):
    """The create fields of a text-to-speech task (``text``, ``voice_id`` and ``language`` are required)."""

    text: str
    voice_id: int | str
    language: int | str  # CAMB's language id, e.g. 1 for English (United States)


def tts_request(fields: Mapping[str, Any]) -> ApiRequest:
    """``POST /tts``: speak ``text`` with ``voice_id`` in ``language`` (integers; digit strings pass)."""
    body: dict[str, Any] = {
        "text": text("text", fields.get("text")),
        "voice_id": number("voice_id", fields.get("voice_id")),
        "language": number("language", fields.get("language")),
    }
    optional_numbers(body, fields, "gender", "age")
    return create_request(TTS, body, fields)


TTS = CambKind(
    "tts",
    "text-to-speech",
    "/tts",
    "tts-result",
    "text, voice_id and language",
    MEDIA_OUTPUT_TYPES,
    "speech",
    create_fields=TtsFields,
    build=tts_request,
    parse_result=parse_media_result,
)
