"""Request validation for the stand-in, answering like FastAPI/pydantic: a list of ``{loc, msg, type}``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

Error = dict[str, Any]

MIN_DESCRIPTION_CHARS = 100
MIN_DESCRIPTION_WORDS = 18

_INT = re.compile(r"\s*[+-]?[0-9]+\s*")
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


def error(loc: tuple[str | int, ...], kind: str, msg: str) -> Error:
    """One FastAPI validation error."""
    return {"loc": list(loc), "msg": msg, "type": kind}


def missing(loc: tuple[str | int, ...]) -> Error:
    return error(loc, "missing", "Field required")


def is_int_text(value: str) -> bool:
    """Whether a path, query or form value parses as an integer (ASCII digits only)."""
    return _INT.fullmatch(value) is not None


def int_text_error(loc: tuple[str | int, ...]) -> Error:
    return error(loc, "int_parsing", "Input should be a valid integer, unable to parse string as an integer")


def check_create(body: Any) -> list[Error]:
    """Errors in a ``POST /text-to-voice`` JSON body."""
    if not isinstance(body, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        return [error(("body",), "model_attributes_type", msg)]
    errors: list[Error] = []
    for name in ("text", "voice_description"):
        loc = ("body", name)
        value = body.get(name)
        if name not in body:
            errors.append(missing(loc))
        elif not isinstance(value, str):
            errors.append(error(loc, "string_type", "Input should be a valid string"))
        elif name == "text" and not value.strip():
            errors.append(error(loc, "string_too_short", "String should have at least 1 character"))
        elif name == "voice_description" and len(value) < MIN_DESCRIPTION_CHARS:
            errors.append(
                error(loc, "string_too_short", f"String should have at least {MIN_DESCRIPTION_CHARS} characters")
            )
        elif name == "voice_description" and len(value.split()) < MIN_DESCRIPTION_WORDS:
            errors.append(
                error(loc, "value_error", f"Value error, the description needs at least {MIN_DESCRIPTION_WORDS} words")
            )
    for name in ("project_name", "project_description"):
        if body.get(name) is not None and not isinstance(body[name], str):
            errors.append(error(("body", name), "string_type", "Input should be a valid string"))
    folder_id = body.get("folder_id")
    if folder_id is not None and (isinstance(folder_id, bool) or not isinstance(folder_id, int)):
        errors.append(error(("body", "folder_id"), "int_type", "Input should be a valid integer"))
    return errors


def check_custom_voice(form: Mapping[str, str], has_file: bool) -> list[Error]:
    """Errors in a ``POST /create-custom-voice`` multipart form."""
    errors: list[Error] = []
    for name in ("voice_name", "gender"):
        if name not in form:
            errors.append(missing(("body", name)))
    if not has_file:
        errors.append(missing(("body", "file")))
    for name in ("gender", "age", "language"):
        if name in form and not is_int_text(form[name]):
            errors.append(int_text_error(("body", name)))
    for name in ("enhance_audio", "publish_voice_to_market_place"):
        if name in form and form[name].strip().lower() not in _TRUE | _FALSE:
            errors.append(
                error(("body", name), "bool_parsing", "Input should be a valid boolean, unable to interpret input")
            )
    return errors


# --- the other kinds: each create body is a small table of field -> type ----------------------------

_PROJECT = {"project_name": "str", "project_description": "str", "folder_id": "int"}


def _type_error(loc: tuple[str | int, ...], kind: str, value: Any) -> Error | None:
    """The error of one field value against a type name (None: it fits)."""
    if kind == "str" and not isinstance(value, str):
        return error(loc, "string_type", "Input should be a valid string")
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        return error(loc, "int_type", "Input should be a valid integer")
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return error(loc, "float_type", "Input should be a valid number")
    if kind == "bool" and not isinstance(value, bool):
        return error(loc, "bool_type", "Input should be a valid boolean")
    if kind == "lang" and (isinstance(value, bool) or not isinstance(value, (int, str))):
        return error(loc, "union_type", "Input should be a valid integer or string")
    if kind == "obj" and not isinstance(value, dict):
        return error(loc, "dict_type", "Input should be a valid dictionary")
    if kind == "mode" and value not in ("fast", "slow"):
        return error(loc, "literal_error", "Input should be 'fast' or 'slow'")
    if kind.endswith("s") and kind[:-1] in ("int", "lang", "obj", "str"):
        if not isinstance(value, list):
            return error(loc, "list_type", "Input should be a valid list")
        for index, item in enumerate(value):
            if (problem := _type_error((*loc, index), kind[:-1], item)) is not None:
                return problem
    return None


def check_fields(body: Any, required: Mapping[str, str], optional: Mapping[str, str]) -> list[Error]:
    """Errors of a JSON create body: required fields present and typed (strings not blank), optional ones typed."""
    if not isinstance(body, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        return [error(("body",), "model_attributes_type", msg)]
    errors: list[Error] = []
    for name, kind in required.items():
        if body.get(name) is None:
            errors.append(missing(("body", name)))
        elif (problem := _type_error(("body", name), kind, body[name])) is not None:
            errors.append(problem)
        elif kind == "str" and not body[name].strip():
            errors.append(error(("body", name), "string_too_short", "String should have at least 1 character"))
    for name, kind in {**_PROJECT, **optional}.items():
        if body.get(name) is not None and (problem := _type_error(("body", name), kind, body[name])) is not None:
            errors.append(problem)
    return errors


def check_tts(body: Any) -> list[Error]:
    return check_fields(body, {"text": "str", "voice_id": "int", "language": "int"}, {"gender": "int", "age": "int"})


def check_translated_tts(body: Any) -> list[Error]:
    required = {"text": "str", "voice_id": "int", "source_language": "int", "target_language": "int"}
    optional = {"gender": "int", "age": "int", "formality": "int", "chosen_dictionaries": "ints"}
    return check_fields(body, required, optional)


def check_dub(body: Any) -> list[Error]:
    optional = {
        "target_language": "lang",
        "target_languages": "langs",
        "selected_audio_tracks": "ints",
        "add_output_as_an_audio_track": "bool",
        "chosen_dictionaries": "ints",
        "ai_optimization": "bool",
        "transcription_mode": "mode",
        "source_transcript": "obj",
        "target_transcripts": "objs",
    }
    errors = check_fields(body, {"video_url": "str", "source_language": "lang"}, optional)
    if not errors and not body.get("target_language") and not body.get("target_languages"):
        errors.append(error(("body", "target_languages"), "value_error", "Value error, give target_language(s)"))
    return errors


def check_text_to_sound(body: Any) -> list[Error]:
    return check_fields(body, {"prompt": "str"}, {"duration": "number", "audio_type": "str"})


def check_media_form(
    form: Mapping[str, str], has_file: bool, required: tuple[str, ...], file_field: str
) -> list[Error]:
    """Errors of a multipart create (transcribe, audio-separation): required form fields, and media."""
    errors = [missing(("body", name)) for name in required if name not in form]
    if not has_file and not form.get("media_url") and not form.get("audio_url"):
        errors.append(missing(("body", file_field)))
    return errors
