"""The checks every kind's create fields share: text, numbers, languages, media URLs, flags, the project fields.

Each returns the value as CAMB takes it or raises ``CambInputError`` naming the field, so a bad value is
refused before anything is sent.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import urlsplit

from airflow_provider_camb.api import ApiRequest, parse_whole_number, whole_number
from airflow_provider_camb.exceptions import CambInputError

if TYPE_CHECKING:
    from airflow_provider_camb.kinds._kind import CambKind

MAX_INPUT_CHARS = 10_000
MAX_URL_CHARS = 4096
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")
_SURROGATE = re.compile("[\ud800-\udfff]")
#: Whole-number fields where 0 means something (CAMB's gender code 0: not specified; audio track 0).
_ZERO_ALLOWED = frozenset({"gender", "selected_audio_tracks"})


class ProjectFields(TypedDict, total=False):
    """The optional fields every CAMB create accepts."""

    project_name: str
    project_description: str
    folder_id: int | str


PROJECT_FIELDS = tuple(ProjectFields.__annotations__)


def visible_text(value: str) -> str:
    """``value`` without format characters (Unicode Cf: zero-width spaces, joiners, marks) and outer whitespace."""
    return "".join(char for char in value if unicodedata.category(char) != "Cf").strip()


def text(name: str, value: object) -> str:
    """Text CAMB can read: a string, not empty without format characters and whitespace, no NUL or lone surrogate."""
    if not isinstance(value, str):
        raise CambInputError(f"{name} must be a string, got {type(value).__name__}.")
    if not visible_text(value):
        raise CambInputError(f"{name} must not be empty (format characters and whitespace alone do not count).")
    if len(value) > MAX_INPUT_CHARS:
        raise CambInputError(f"{name} is {len(value)} characters; at most {MAX_INPUT_CHARS} are accepted.")
    if "\x00" in value:
        raise CambInputError(f"{name} contains a NUL character (at position {value.index(chr(0))}); remove it.")
    if surrogate := _SURROGATE.search(value):
        raise CambInputError(
            f"{name} contains a lone surrogate (at position {surrogate.start()}), which is not text; it comes from "
            "decoding bytes with errors='surrogateescape'. Decode the text properly."
        )
    return value


def number(name: str, value: object) -> int:
    """A whole number from 1 (from 0 for the fields where 0 means something); digit strings pass."""
    return whole_number(name, value, minimum=0 if name.partition("[")[0] in _ZERO_ALLOWED else 1)


def optional_numbers(body: dict[str, Any], fields: Mapping[str, Any], *names: str) -> None:
    """Put each of ``names`` that ``fields`` gives into ``body`` as a whole number."""
    for name in names:
        if fields.get(name) is not None:
            body[name] = number(name, fields[name])


def number_list(name: str, values: object) -> list[int]:
    if not isinstance(values, (list, tuple)):
        raise CambInputError(f"{name} must be a list of whole numbers, got {values!r}.")
    return [number(f"{name}[{index}]", value) for index, value in enumerate(values)]


def flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise CambInputError(f"{name} must be True or False, got {value!r}.")
    return value


def language(name: str, value: object) -> int | str:
    """A CAMB language: an integer id from 1 (digit strings pass) or a locale tag such as ``fr-fr``."""
    if parse_whole_number(value) is not None:
        return whole_number(name, value)
    if isinstance(value, str) and _LOCALE.fullmatch(value.strip()):
        return value.strip()
    raise CambInputError(f"{name} must be a CAMB language id (an integer) or a locale tag like 'fr-fr', got {value!r}.")


def media_url(name: str, url: object) -> str:
    """A public http(s) media URL; errors show only its host (it may be a signed link)."""
    if not isinstance(url, str) or not url.strip():
        raise CambInputError(f"{name} must be a non-empty http(s) URL, got {type(url).__name__}.")
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        raise CambInputError(f"{name} is not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CambInputError(
            f"{name} must be a public http(s) URL CAMB can fetch, got one with scheme {parts.scheme!r}."
        )
    if len(url) > MAX_URL_CHARS:
        raise CambInputError(f"{name} is {len(url)} characters long; at most {MAX_URL_CHARS} are accepted.")
    return url


def create_request(kind: CambKind, body: dict[str, Any], fields: Mapping[str, Any]) -> ApiRequest:
    """``POST /{create path}`` of ``kind`` with ``body``, plus the project fields ``fields`` gives."""
    for name in ("project_name", "project_description"):
        if fields.get(name) is not None:
            body[name] = text(name, fields[name])
    if fields.get("folder_id") is not None:
        body["folder_id"] = whole_number("folder_id", fields["folder_id"])
    return ApiRequest("POST", kind.create_path, f"creating a {kind.label} task", json=body)


def create_form_request(kind: CambKind, form: dict[str, Any], fields: Mapping[str, Any]) -> ApiRequest:
    """``create_request`` sent as a form (``transcribe``, ``audio-separation``): every value as text; the
    media file, when there is one, goes along as a file part (``CambHook.create_task(..., media_file=...)``)."""
    request = create_request(kind, form, fields)
    return replace(request, json=None, form={name: str(value) for name, value in (request.json or {}).items()})


def check_media(kind: CambKind, request: ApiRequest, files: Mapping[str, Any]) -> None:
    """Refuse, before sending, a create of an uploading kind that carries no media (no file part, no URL)."""
    if kind.upload and not files.get(kind.upload) and not (request.form or {}).get("media_url"):
        url = " or a media_url" if "media_url" in kind.fields else ""
        raise CambInputError(
            f"A CAMB {kind.label} task needs its media: the file part {kind.upload!r} "
            f"(CambHook.create_task(request, kind, {kind.upload}=...), or the operator's media_file){url}. "
            "Nothing was sent."
        )
