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
