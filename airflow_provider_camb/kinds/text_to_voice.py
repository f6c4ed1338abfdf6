"""Text-to-voice: design a voice from a description (``POST /text-to-voice``), read its previews, keep one.

Keeping a preview (``POST /create-custom-voice``) is not a task, but it is where a designed voice goes,
so its request and reply live here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from airflow_provider_camb.api import ApiRequest, check_run_id, result_link, result_what, unreadable, whole_number
from airflow_provider_camb.exceptions import CambApiError, CambInputError
from airflow_provider_camb.kinds._fields import ProjectFields, create_request, text, visible_text
from airflow_provider_camb.kinds._kind import CambKind
from airflow_provider_camb.kinds._results import string_list

MIN_DESCRIPTION_CHARS = 100
MIN_DESCRIPTION_WORDS = 18


class TextToVoiceOptions(ProjectFields, total=False):
    """The optional create fields of a text-to-voice task."""

    check_description: bool  # refuse a description CAMB would not process (default True); not sent


class TextToVoiceFields(TextToVoiceOptions, total=False):
    """The create fields of a text-to-voice task (``text`` and ``voice_description`` are required)."""

    text: str
    voice_description: str


def text_to_voice_request(fields: Mapping[str, Any]) -> ApiRequest:
    """``POST /text-to-voice``; refuses input CAMB would reject, before it is sent."""
    body: dict[str, Any] = {
        "text": text("text", fields.get("text")),
        "voice_description": text("voice_description", fields.get("voice_description")),
    }
    description = visible_text(body["voice_description"])  # zero-width "words" count for nothing
    words = len(description.split())
    short = len(description) < MIN_DESCRIPTION_CHARS or words < MIN_DESCRIPTION_WORDS
    if fields.get("check_description", True) is not False and short:
        raise CambInputError(
            f"voice_description has {len(description)} characters and {words} words; CAMB needs at least "
            f"{MIN_DESCRIPTION_CHARS} characters and {MIN_DESCRIPTION_WORDS} words to design a voice. "
            "Describe the voice in more detail (age, accent, tone, pace), or pass check_description=False."
        )
    return create_request(TEXT_TO_VOICE, body, fields)


def parse_previews(body: Any, kind: CambKind, run_id: int) -> list[str]:
    """The preview URLs of a result reply; a result without previews is an error."""
    what = result_what(kind, run_id)
    previews = string_list(body, "previews", what, "preview URLs")
    if not previews:
        raise CambApiError(
            f"CAMB run {run_id} has no previews. Create the task again; contact CAMB.AI support if it repeats."
        )
    return [result_link(url, what, "a preview link") for url in previews]


TEXT_TO_VOICE = CambKind(
    "text-to-voice",
    "text-to-voice",
    "/text-to-voice",
    "text-to-voice-result",
    "text and voice description",
    bulk_result_path="",
    create_fields=TextToVoiceFields,
    build=text_to_voice_request,
    parse_result=parse_previews,
)


class CustomVoiceOptions(TypedDict, total=False):
    """The optional fields of a custom voice."""

    run_id: int | str  # the text-to-voice run the preview came from
    age: int | str
    description: str
    language: int | str  # a CAMB language id


class CustomVoiceFields(CustomVoiceOptions, total=False):
    """The fields of a custom voice (``voice_name`` and ``gender`` are required; the audio is sent apart)."""

    voice_name: str
    gender: int | str  # CAMB's gender code; 0: not specified


CUSTOM_VOICE_FIELDS = tuple(CustomVoiceFields.__annotations__)


def custom_voice_request(fields: Mapping[str, Any]) -> ApiRequest:
    """``POST /create-custom-voice``: keep a preview as a voice (the hook adds the audio as the ``file`` part).

    The one place a custom voice's fields are checked; unknown fields are refused.
    """
    unknown = sorted(str(name) for name in fields if name not in CUSTOM_VOICE_FIELDS)
    if unknown:
        raise CambInputError(
            f"A custom voice has no field(s) {', '.join(unknown)}; its fields are {CUSTOM_VOICE_FIELDS}."
        )
    voice_name = text("voice_name", fields.get("voice_name"))
    form = {"voice_name": voice_name, "gender": str(whole_number("gender", fields.get("gender"), minimum=0))}
    for name in ("age", "language"):
        if fields.get(name) is not None:
            form[name] = str(whole_number(name, fields[name]))
    if fields.get("description") is not None:
        form["description"] = text("description", fields["description"])
    run_id = fields.get("run_id")
    params = None if run_id is None else {"run_id": str(check_run_id(run_id))}
    return ApiRequest("POST", "/create-custom-voice", f"creating custom voice {voice_name!r}", params=params, form=form)


def parse_voice_id(body: Any) -> int:
    """The ``voice_id`` of a create-custom-voice reply."""
    voice_id = body.get("voice_id") if isinstance(body, dict) else None
    try:
        return whole_number("voice_id", voice_id)
    except CambInputError:
        raise unreadable("creating a custom voice", f"no integer voice_id in {str(body)[:200]!r}") from None
