"""The media file a create uploads (transcription, audio separation): checked before anything is sent.

``media_to_upload`` checks what a create names as its media, for the single media operators and for each
item of a batch alike: a kind that also takes a ``media_url`` needs exactly one of ``media_file`` and
``media_url``, any other uploading kind a ``media_file``; the file is a local path or an object storage
URI (``_storage.storage_path``) that must exist, be a file and fit ``max_bytes``. ``upload_parts`` opens it
as the create's file part only while that create is sent: ``requests`` reads it into the one request body,
so a create holds one file in memory, and nothing else of the file is kept.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_camb._storage import storage_path
from airflow_provider_camb.api import whole_number
from airflow_provider_camb.exceptions import CambInputError

if TYPE_CHECKING:
    from airflow_provider_camb.kinds import CambKind


@dataclass(frozen=True)
class MediaFile:
    """A checked media file to upload: where it is, its size (None: not looked at yet) and its media type."""

    path: ObjectStoragePath
    size: int | None
    content_type: str

    @property
    def name(self) -> str:
        """Its file name (the last part of its path or URI), as the upload names it."""
        return str(self.path.name) or "media"


def media_to_upload(
    kind: CambKind,
    media_file: object,
    media_url: object,
    *,
    conn_id: str | None,
    max_bytes: int | None = None,
    look: bool = True,
) -> MediaFile | None:
    """The checked file a create of ``kind`` uploads; None when its media is at ``media_url``.

    :param look: Check that the file exists and fits ``max_bytes`` (False: only the path is checked; the
        file is read when its create opens it).
    """
    takes_url = "media_url" in kind.fields
    if takes_url and (media_file is None) == (media_url is None):
        raise CambInputError("Give media_file (a local or object storage path) or media_url, exactly one of them.")
    if media_file is None:
        if not takes_url:
            raise CambInputError(f"A CAMB {kind.label} task needs media_file (a local or object storage path).")
        return None
    limit = whole_number("max_bytes", max_bytes, optional=True)
    path = storage_path(media_file, "media_file", conn_id=conn_id)
    content_type = mimetypes.guess_type(str(path.name))[0] or "application/octet-stream"
    if not look:
        return MediaFile(path, None, content_type)
    try:
        size = path.stat().st_size if path.is_file() else None
    except OSError:
        size = None
    if size is None:
        raise CambInputError(f"The media_file {str(path)!r} does not exist or is not a file.")
    if limit is not None and size > limit:
        raise CambInputError(f"The media_file {str(path)!r} is {size} bytes; max_bytes allows {limit}.")
    return MediaFile(path, size, content_type)


@contextmanager
def upload_parts(kind: CambKind, media: MediaFile | None) -> Iterator[dict[str, Any]]:
    """The file parts of a create that uploads ``media``, ``{kind.upload: (name, file, type)}`` (``{}`` for
    none), the file open while the create is sent; a file that cannot be opened is a ``CambInputError``."""
    if media is None:
        yield {}
        return
    try:
        file = media.path.open("rb")  # type: ignore[no-untyped-call]
    except OSError as error:
        raise CambInputError(f"The media_file {str(media.path)!r} cannot be read: {error}.") from error
    with file:
        yield {kind.upload: (media.name, file, media.content_type)}
