"""The items of a batch: read from a list or a JSON Lines / CSV file, and checked before anything is sent.

Each item is a dict of the single create operator's fields of its kind, plus an optional ``key``. The
batch operator's own fields are defaults under every item. Every item goes through the kind's request
builder in its module under ``kinds`` (the very checks of the single operator); a bad item, an unknown field or a
duplicate key fails the batch with a ``CambInputError`` naming the item, its key and the reason,
before any request. An item that uploads a media file carries it checked (``_media_file.MediaFile``): its path,
not its bytes, which are read only while its own create is sent.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from airflow_provider_camb._media_file import MediaFile
from airflow_provider_camb._rendered import rendered_value
from airflow_provider_camb._storage import storage_path
from airflow_provider_camb.api import ApiRequest
from airflow_provider_camb.exceptions import CambInputError

#: A key names the item's files, so it is a plain file-name stem.
KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: The bad items listed in the error, at most.
MAX_LISTED = 20
_JSON_LINES = (".jsonl", ".ndjson", ".json")


@dataclass(frozen=True)
class Item:
    """One checked item: where it came from, its key, the create request to send for it and the file it uploads."""

    index: int
    where: str  # "item 3", or "line 4 of s3://bucket/lines.jsonl"
    key: str
    request: ApiRequest
    media: MediaFile | None = None


@dataclass(frozen=True)
class RawItem:
    """One item as read, before the checks."""

    index: int
    where: str
    fields: Mapping[str, Any]


def read_items(items: object, items_uri: object, items_conn_id: str | None) -> list[RawItem]:
    """The items as given: a list of dicts (or its rendered text), or the lines of a JSON Lines or CSV file."""
    if (items is None) == (items_uri is None or items_uri == ""):
        raise CambInputError("Give the batch either items (a list of dicts) or items_uri (a JSON Lines or CSV file).")
    if items is not None:
        return _listed(items)
    return _from_file(str(items_uri), items_conn_id)


def _listed(items: object) -> list[RawItem]:
    items = rendered_value(items)  # a list rendered to text by a template
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        raise CambInputError(f"items must be a list of dicts, got {type(items).__name__}: {str(items)[:200]!r}.")
    raw: list[RawItem] = []
    for index, fields in enumerate(items):
        if not isinstance(fields, Mapping):
            raise CambInputError(f"Item {index} of items must be a dict of fields, got {type(fields).__name__}.")
        raw.append(RawItem(index, f"item {index}", fields))
    return raw


def _from_file(uri: str, conn_id: str | None) -> list[RawItem]:
    path = storage_path(uri, "items_uri", conn_id=conn_id)
    suffix = PurePosixPath(str(path.path)).suffix.lower()
    if suffix not in (*_JSON_LINES, ".csv"):
        raise CambInputError(
            f"items_uri {uri!r} must name a JSON Lines file (.jsonl, .ndjson) or a CSV file (.csv), got {suffix!r}."
        )
    try:
        with path.open("rb") as file:  # type: ignore[no-untyped-call]
            text = file.read().decode("utf-8-sig")
    except FileNotFoundError:
        raise CambInputError(f"items_uri {uri!r} does not exist.") from None
    except UnicodeDecodeError as error:
        raise CambInputError(f"items_uri {uri!r} is not UTF-8 text: {error}.") from None
    except OSError as error:
        raise CambInputError(f"items_uri {uri!r} cannot be read: {error}.") from error
    return _csv_items(text, uri) if suffix == ".csv" else _json_lines(text, uri)


def _json_lines(text: str, uri: str) -> list[RawItem]:
    raw: list[RawItem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
        except ValueError as error:
            raise CambInputError(f"Line {number} of {uri} is not JSON ({error}).") from None
        if not isinstance(fields, dict):
            raise CambInputError(f"Line {number} of {uri} must be a JSON object, got {type(fields).__name__}.")
        raw.append(RawItem(len(raw), f"line {number} of {uri}", fields))
    return raw


def _csv_items(text: str, uri: str) -> list[RawItem]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    raw: list[RawItem] = []
    for row in reader:
        if None in row:
            raise CambInputError(f"Line {reader.line_num} of {uri} has more cells than the header has columns.")
        fields = {name: value for name, value in row.items() if value not in (None, "")}  # an empty cell: not given
        if fields:
            raw.append(RawItem(len(raw), f"line {reader.line_num} of {uri}", fields))
    return raw


def default_key(kind: str, request: ApiRequest, media: MediaFile | None = None) -> str:
    """A stable key from an item's inputs: the first 16 hex digits of the sha256 of its checked request and,
    for an item that uploads a file, the file's name; not its folder (a staging or temporary folder may
    differ between tries), nor its content (which would be read at every try and resume)."""
    fields: dict[str, Any] = {"kind": kind, "path": request.path, "body": request.json}
    if request.form is not None:  # a form kind's inputs (the keys of the JSON kinds stay as they were)
        fields["form"] = request.form
    if media is not None:
        fields["media_file"] = media.name
    inputs = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(inputs.encode()).hexdigest()[:16]


def check_items(
    raw: Sequence[RawItem],
    *,
    kind: str,
    fields: Sequence[str],
    defaults: Mapping[str, Any],
    build: Callable[[Mapping[str, Any]], ApiRequest],
    media: Callable[[Mapping[str, Any]], MediaFile | None] | None = None,
) -> list[Item]:
    """Check every item with the kind's request builder; refuse bad items and duplicate keys.

    :param raw: The items as read.
    :param kind: The CAMB task kind (part of a default key).
    :param fields: The field names an item may have besides ``key``.
    :param defaults: Fields applied under every item (an item's own value wins).
    :param build: The kind's request builder over one item's fields (raises ``CambInputError``).
    :param media: The checked file an item's create uploads, from its fields (raises ``CambInputError``).
    """
    if not raw:
        raise CambInputError("The batch has no items.")
    allowed = set(fields)
    checked: list[Item] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for item in raw:
        key = item.fields.get("key")
        label = f"{item.where.capitalize()}" + ("" if key is None else f" (key {key!r})")
        unknown = sorted(str(name) for name in item.fields if name != "key" and name not in allowed)
        if unknown:
            problems.append(f"{label}: unknown field(s) {', '.join(unknown)}; the fields are {', '.join(fields)}.")
            continue
        merged = {**defaults, **{name: value for name, value in item.fields.items() if name != "key"}}
        try:
            request = build(merged)
            upload = None if media is None else media(merged)
        except CambInputError as error:
            problems.append(f"{label}: {error}")
            continue
        if key is None:
            key = default_key(kind, request, upload)
        elif isinstance(key, int) and not isinstance(key, bool):
            key = str(key)
        if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
            problems.append(
                f"{label}: a key must be 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or "
                "digit (it names the item's files)."
            )
            continue
        if key in seen:
            same = "" if "key" in item.fields else " (their inputs are identical; give each a key to make both)"
            problems.append(f"{label}: key {key!r} is also the key of {seen[key]}{same}.")
            continue
        seen[key] = item.where
        checked.append(Item(item.index, item.where, key, request, upload))
    if problems:
        shown = "\n".join(f"- {problem}" for problem in problems[:MAX_LISTED])
        more = f"\n... and {len(problems) - MAX_LISTED} more." if len(problems) > MAX_LISTED else ""
        raise CambInputError(
            f"{len(problems)} of {len(raw)} batch items are refused; nothing was sent to CAMB. Fix them and run "
            f"the task again:\n{shown}{more}"
        )
    return checked
