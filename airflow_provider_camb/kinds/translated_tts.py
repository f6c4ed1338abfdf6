"""Translated text to speech: speak a text in another language (``POST /translated-tts``); speech like ``tts``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_camb.api import ApiRequest
from airflow_provider_camb.kinds._fields import (
    ProjectFields,
    create_request,
    number,
    number_list,
    optional_numbers,
    text,
)
from airflow_provider_camb.kinds._kind import CambKind
from airflow_provider_camb.kinds._media import MEDIA_OUTPUT_TYPES, parse_media_result


class TranslatedTtsOptions(ProjectFields, total=False):
    """The optional create fields of a translated text-to-speech task."""

    gender: int | str
    age: int | str
    formality: int | str  # CAMB's formality code
    chosen_dictionaries: list[int | str]  # CAMB dictionary ids


class TranslatedTtsFields(TranslatedTtsOptions, total=False):
    """The create fields of a translated text-to-speech task (the first four are required)."""

    text: str
    voice_id: int | str
    source_language: int | str
    target_language: int | str


def translated_tts_request(fields: Mapping[str, Any]) -> ApiRequest:
    """``POST /translated-tts``: speak ``text`` translated from ``source_language`` into ``target_language``."""
    body: dict[str, Any] = {
        "text": text("text", fields.get("text")),
        "voice_id": number("voice_id", fields.get("voice_id")),
        "source_language": number("source_language", fields.get("source_language")),
        "target_language": number("target_language", fields.get("target_language")),
    }
    optional_numbers(body, fields, "gender", "age", "formality")
    if fields.get("chosen_dictionaries") is not None:
        body["chosen_dictionaries"] = number_list("chosen_dictionaries", fields["chosen_dictionaries"])
    return create_request(TRANSLATED_TTS, body, fields)


TRANSLATED_TTS = CambKind(
    "translated-tts",
    "translated text-to-speech",
    "/translated-tts",
    "tts-result",
    "text, voice_id and languages",
    MEDIA_OUTPUT_TYPES,
    "speech",
    create_fields=TranslatedTtsFields,
    build=translated_tts_request,
    parse_result=parse_media_result,
)
