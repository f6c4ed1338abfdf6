"""Where result operators write: local folders or object storage, each file whole or not at all.

Every result operator (text-to-voice previews, speech, dubbing, sound) writes through
``result_files`` (or ``write_atomically`` for a result of one file): the bytes go to hidden temporary
names in the target folder and are moved to their final names only when every file of the result is
complete; on any failure the temporary files are removed. So no reader ever sees a partial file, or
part of a result, under a final name, and a rerun replaces the files with the same bytes.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, TypeVar
from urllib.parse import unquote, urlsplit

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_camb import _deprecated
from airflow_provider_camb.exceptions import CambInputError

_LOCAL_PROTOCOLS = frozenset({"", "file", "local"})
#: Storage that needs no credentials: no warning when it is used without a connection.
_NO_CREDENTIALS = frozenset({"memory"})
_COPY_CHUNK = 1024 * 1024

#: File extensions of the media types CAMB (or a storage host in front of it) may send.
MEDIA_EXTENSIONS: dict[str, str] = {
    "audio/wav": "wav",
    "audio/wave": "wav",
    "audio/x-wav": "wav",
    "audio/vnd.wave": "wav",
    "audio/x-pn-wav": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/mpeg3": "mp3",
    "audio/x-mpeg-3": "mp3",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/ogg": "ogg",
    "audio/vorbis": "ogg",
    "application/ogg": "ogg",
    "audio/opus": "opus",
    "audio/aac": "aac",
    "audio/x-aac": "aac",
    "audio/mp4": "m4a",
    "audio/m4a": "m4a",
    "audio/x-m4a": "m4a",
    "audio/webm": "webm",
    "audio/aiff": "aiff",
    "audio/x-aiff": "aiff",
    "audio/basic": "au",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "video/x-matroska": "mkv",
    "application/json": "json",
}
_SAFE_EXTENSION = re.compile(r"[a-z0-9]{1,8}")

if not TYPE_CHECKING:  # the 0.1.0 names, each with a warning once (type checkers see only the new ones)
    __getattr__ = _deprecated.module_getattr(__name__)

T = TypeVar("T")
log = logging.getLogger(__name__)


def media_extension(content_type: str | None, url: str = "") -> str:
    """The file extension of a media file: from its Content-Type, else from its URL's path, else ``bin``."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type in MEDIA_EXTENSIONS:
        return MEDIA_EXTENSIONS[media_type]
    try:
        suffix = PurePosixPath(unquote(urlsplit(url).path)).suffix[1:].lower()
    except ValueError:
        suffix = ""
    return suffix if _SAFE_EXTENSION.fullmatch(suffix) else "bin"


def storage_path(location: object, name: str, *, conn_id: str | None = None) -> ObjectStoragePath:
    """A local path or object storage URI as an ``ObjectStoragePath`` whose filesystem is usable.

    ``conn_id`` names the Airflow connection that reaches the storage (e.g. an ``aws`` connection), as
    does a ``scheme://conn_id@bucket/path`` URI; naming two different ones is refused. With neither, the
    storage library's own defaults apply (for ``s3://``: boto's environment, not ``aws_default``), which
    is logged as a warning because the files may then go somewhere else than the user's connection says.
    """
    if not isinstance(location, ObjectStoragePath) and not (
        isinstance(location, (str, os.PathLike)) and os.fspath(location).strip()
    ):
        raise CambInputError(f"{name} must be a local path or an object storage URI, got {location!r}.")
    named = _named_connection(location)
    if conn_id and named and named != conn_id:
        raise CambInputError(
            f"{name} {str(location)!r} names the connection {named!r} but {name}_conn_id is {conn_id!r}: "
            f"give the connection once, either in the URI or as {name}_conn_id."
        )
    try:
        if isinstance(location, ObjectStoragePath):
            path = location if not conn_id else ObjectStoragePath(location, conn_id=conn_id)
        elif conn_id:
            path = ObjectStoragePath(os.fspath(location), conn_id=conn_id)
        else:
            path = ObjectStoragePath(os.fspath(location))
        path.fs  # noqa: B018  # an unknown scheme or a missing fsspec package fails here, before any request
    except (ValueError, TypeError, ImportError) as error:
        raise CambInputError(
            f"{name} {str(location)!r} cannot be used: {error}. Install the provider of that storage "
            "(e.g. apache-airflow-providers-amazon for s3://) or use a local folder."
        ) from error
    protocol = str(path.protocol)
    if protocol not in _LOCAL_PROTOCOLS | _NO_CREDENTIALS and not _conn_id_of(path):
        log.warning(
            "%s %s names no Airflow connection, so %s:// uses its library's default credentials and endpoint "
            "(for s3://: boto's environment and ~/.aws, not aws_default). To write with a connection, set "
            "%s_conn_id or use %s://CONN_ID@%s.",
            name,
            str(location),
            protocol,
            name,
            protocol,
            str(location).split("://", 1)[-1],
        )
    return path


def _conn_id_of(path: ObjectStoragePath) -> str | None:
    """The connection an ``ObjectStoragePath`` uses (Airflow 3 keeps it in ``conn_id``, 2.x in its options)."""
    found = getattr(path, "conn_id", None) or getattr(path, "storage_options", {}).get("conn_id")
    return str(found) if found else None


def _named_connection(location: object) -> str | None:
    """The connection id a location names itself: an ``ObjectStoragePath``'s, or a URI's ``conn_id@``."""
    if isinstance(location, ObjectStoragePath):
        return _conn_id_of(location)
    if not isinstance(location, (str, os.PathLike)):
        return None
    try:
        netloc = urlsplit(str(os.fspath(location))).netloc
    except ValueError:
        return None
    userinfo, at, _ = netloc.rpartition("@")
    return (userinfo or None) if at else None


def is_local(path: ObjectStoragePath) -> bool:
    return str(path.protocol) in _LOCAL_PROTOCOLS


def destination_folder(location: object, name: str = "destination", *, conn_id: str | None = None) -> ObjectStoragePath:
    """The folder to write results to; a local one is created (object stores have no folders to create)."""
    folder = storage_path(location, name, conn_id=conn_id)
    if is_local(folder):
        local = Path(str(folder.path))
        if local.exists() and not local.is_dir():
            raise CambInputError(f"{name} {str(folder)!r} exists and is not a folder.")
        try:
            local.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CambInputError(f"Cannot create the {name} folder {str(folder)!r}: {error}") from error
    return folder


class ResultFiles:
    """The files of one result (every preview of a run, every dubbed output), written whole or none at all.

    ``write`` puts each file under a hidden temporary name in the target folder; only when the whole
    result is written does ``result_files`` move them all to their final names. If any file fails, no
    file of the result reaches its final name and every temporary file is removed; if a move itself fails,
    the files this result already moved into place are removed again, and the error goes on.
    """

    def __init__(self, folder: ObjectStoragePath) -> None:
        self.folder = folder
        self._pending: list[tuple[ObjectStoragePath, ObjectStoragePath]] = []  # (temporary, final)

    def write(
        self, stem: str, write: Callable[[IO[bytes]], T], final_name: Callable[[T], str]
    ) -> tuple[ObjectStoragePath, T]:
        """``write`` fills a temporary file, ``final_name(result)`` names it; returns the final path it will have.

        For object storage, ``write`` fills a local temporary file first (one that can be rewound, so a
        download cut off midway is retried from the start) and the bytes are uploaded once it has finished.
        """
        part = self.folder / f".{stem}.part-{secrets.token_hex(8)}"
        try:
            if is_local(self.folder):
                with part.open("wb") as file:  # type: ignore[no-untyped-call]
                    result = write(file)
            else:
                with tempfile.TemporaryFile(prefix="camb-") as spool:
                    result = write(spool)
                    spool.seek(0)
                    with part.open("wb") as file:  # type: ignore[no-untyped-call]
                        shutil.copyfileobj(spool, file, _COPY_CHUNK)
            final = self.folder / final_name(result)
        except BaseException:
            _remove(part)
            raise
        self._pending.append((part, final))
        return final, result

    def _commit(self) -> None:
        moved: list[ObjectStoragePath] = []
        try:
            for part, final in self._pending:
                if is_local(self.folder):
                    os.replace(str(part.path), str(final.path))  # atomic: readers see the old file or the new one
                else:
                    part.rename(final)  # object stores: the final object appears whole, or not at all
                moved.append(final)
        except BaseException:
            for final in moved:
                _remove(final)
            self._discard()
            raise
        self._pending.clear()

    def _discard(self) -> None:
        for part, _ in self._pending:
            _remove(part)
        self._pending.clear()


def _remove(path: ObjectStoragePath) -> None:
    with suppress(OSError):
        path.unlink()


@contextmanager
def result_files(folder: ObjectStoragePath) -> Iterator[ResultFiles]:
    """Write the files of one result inside; they reach their final names together on a clean exit, or none does."""
    files = ResultFiles(folder)
    try:
        yield files
    except BaseException:
        files._discard()
        raise
    files._commit()


def write_atomically(
    folder: ObjectStoragePath, stem: str, write: Callable[[IO[bytes]], T], final_name: Callable[[T], str]
) -> tuple[ObjectStoragePath, T]:
    """Write one file whole or not at all (a result of one file); see ``ResultFiles.write``.

    Returns the final path and what ``write`` returned. On any failure the temporary file is removed
    and the error goes on; a file already under the final name is left as it was.
    """
    with result_files(folder) as files:
        return files.write(stem, write, final_name)


@contextmanager
def local_copy(location: str, name: str, *, conn_id: str | None = None) -> Iterator[str]:
    """A local path of ``location``: itself when local, else a temporary copy removed on exit."""
    if "://" not in location:
        yield location
        return
    path = storage_path(location, name, conn_id=conn_id)
    if is_local(path):
        yield str(path.path)
        return
    try:
        exists = path.is_file()
    except OSError:
        exists = False
    if not exists:
        raise CambInputError(f"The {name} {location!r} does not exist.")
    with tempfile.TemporaryDirectory(prefix="camb-") as folder:
        local = os.path.join(folder, path.name or f"{name}.bin")
        with path.open("rb") as source, open(local, "wb") as target:  # type: ignore[no-untyped-call]
            shutil.copyfileobj(source, target, _COPY_CHUNK)
        yield local
