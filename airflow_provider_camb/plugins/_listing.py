"""Which files a CAMB task wrote, read from its XCom, and which of them may be served.

Every CAMB result operator returns its files as ``{"path", "bytes", "sha256", "content_type"}`` dicts:
a list of them (text-to-voice previews), one (speech, sound), or a map by language of
``{"audio", "video", "transcript"}`` (dubbing). ``files_of`` walks any such shape into one numbered
list, in a fixed order, so a file is asked for by its number and name, never by a path.

A listed file is servable only when its path looks like what our operators write: an absolute local
path or a storage URI, no ``.`` or ``..`` segment, and a base name of the provider's naming scheme
(``camb_run_<id>_preview_<i>.<ext>``, ``camb_<media>_run_<id>[...].<ext>``). So even an XCom edited
through the REST API cannot make the view read ``/etc/passwd`` or the API server's configuration.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_camb._storage import MEDIA_EXTENSIONS

#: The base names CAMB result operators give their files.
CAMB_FILE_NAME = re.compile(
    r"camb_(?:run_\d{1,20}_preview_\d{1,3}|[a-z]{1,20}_run_\d{1,20}(?:_[\w-]{1,80})?)\.[a-z0-9]{1,8}"
)
_PREVIEW = re.compile(r"camb_run_\d+_preview_(\d+)\.")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_DEPTH = 3
_MAX_FILES = 1000


@dataclass(frozen=True)
class ListedFile:
    """One file a task wrote, as its XCom describes it."""

    number: int  #: its place in the listing, from 0: the file's address in the view's URLs
    label: str  #: where it sits in the XCom: ``"1"``, ``"fr-fr audio"``, ... (empty for a single file)
    path: str  #: as written: a local path, or a storage URI that may name its connection
    bytes: int
    sha256: str
    content_type: str

    @property
    def name(self) -> str:
        return PurePosixPath(urlsplit(self.path).path if "://" in self.path else self.path).name

    @property
    def preview(self) -> int | None:
        """The preview number a person sees (from 1) when this is a text-to-voice preview."""
        found = _PREVIEW.match(self.name)
        return None if found is None else int(found.group(1)) + 1

    @property
    def media_type(self) -> str:
        """The Content-Type to serve it with: its own when it is a media type we know, else a download."""
        media_type = self.content_type.split(";", 1)[0].strip().lower()
        return media_type if media_type in MEDIA_EXTENSIONS else "application/octet-stream"

    @property
    def player(self) -> str | None:
        """``"audio"`` or ``"video"`` when a browser can play it in an HTML5 element."""
        kind = self.media_type.split("/", 1)[0]
        return kind if kind in ("audio", "video") else None

    @property
    def servable(self) -> bool:
        return servable_path(self.path)


def files_of(value: object) -> list[ListedFile]:
    """Every file dict in an XCom value, numbered in the order of the value (lists in order, dicts by key)."""
    found = []
    for number, (label, entry) in enumerate(_walk(value, (), 0)):
        if number >= _MAX_FILES:
            break
        found.append(
            ListedFile(
                number, " ".join(label), entry["path"], entry["bytes"], entry["sha256"], entry["content_type"] or ""
            )
        )
    return found


def _walk(value: object, label: tuple[str, ...], depth: int) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, dict) and "path" in value:
        if _is_file(value):
            yield label, value
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            yield from _walk(value[key], (*label, str(key)), depth + 1)
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from _walk(item, (*label, str(position + 1)), depth + 1)


def _is_file(entry: dict[object, object]) -> bool:
    size, digest, content_type = entry.get("bytes"), entry.get("sha256"), entry.get("content_type")
    return (
        isinstance(entry.get("path"), str)
        and isinstance(size, int)
        and not isinstance(size, bool)
        and size >= 0
        and isinstance(digest, str)
        and _SHA256.fullmatch(digest) is not None
        and (content_type is None or isinstance(content_type, str))
    )


def servable_path(path: str) -> bool:
    """Whether ``path`` is one our operators could have written (see the module docstring)."""
    if "\x00" in path or "\\" in path or len(path) > 2048:
        return False
    if "://" in path:
        try:
            parts = urlsplit(path)
        except ValueError:
            return False
        if not re.fullmatch(r"[a-z][a-z0-9+.-]{0,15}", parts.scheme) or parts.query or parts.fragment:
            return False
        if parts.scheme in ("file", "local") and parts.netloc:
            return False
        inner = parts.path
    else:
        inner = path
        if not inner.startswith("/"):
            return False
    segments = inner.split("/")
    if any(segment in (".", "..") for segment in segments):
        return False
    return CAMB_FILE_NAME.fullmatch(segments[-1]) is not None
