"""CambMediaTaskOperator: the base of the operators whose create uploads a media file (or names a media URL)."""

from __future__ import annotations

import mimetypes
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_camb._storage import storage_path
from airflow_provider_camb._task_memory import look_for
from airflow_provider_camb.api import url_host, whole_number
from airflow_provider_camb.exceptions import CambInputError
from airflow_provider_camb.operators.camb_task import CambTaskOperator

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class CambMediaTaskOperator(CambTaskOperator):
    """Start a CAMB task from a media file, uploaded as the form's file part, or from a media URL CAMB fetches.

    The file is a local path or an object storage URI (``s3://...``, read with ``media_conn_id``); it must
    exist and be no larger than ``max_bytes``, and the URL must be public http(s), before anything is sent.

    :param media_file: Local path or object storage URI of the media to upload (templated).
    :param media_conn_id: The Airflow connection that reads ``media_file`` from object storage.
    :param max_bytes: Refuse a ``media_file`` larger than this many bytes (default: no limit).
    """

    #: Whether CAMB also takes a ``media_url`` instead of a file for this kind.
    takes_media_url: ClassVar[bool] = False
    media_url: str | None = None

    def __init__(
        self,
        *,
        media_file: str | None = None,
        media_conn_id: str | None = None,
        max_bytes: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.media_file = media_file
        self.media_conn_id = media_conn_id
        self.max_bytes = max_bytes

    def create(self, context: Context) -> str:
        """Check the fields, then the file (it exists and fits ``max_bytes``), then send them with the file."""
        if self.takes_media_url and (self.media_file is None) == (self.media_url is None):
            raise CambInputError("Give media_file (a local or object storage path) or media_url, exactly one of them.")
        if not self.takes_media_url and self.media_file is None:
            raise CambInputError(f"A CAMB {self.kind.label} task needs media_file (a local or object storage path).")
        request = self.kind.create_request(self.kind.fields_of(self))
        if self.media_file is None:
            return self.hook.create_task(request, self.kind)
        limit = whole_number("max_bytes", self.max_bytes, optional=True)
        path = storage_path(self.media_file, "media_file", conn_id=self.media_conn_id)
        try:
            size = path.stat().st_size if path.is_file() else None
        except OSError:
            size = None
        if size is None:
            raise CambInputError(f"The media_file {str(path)!r} does not exist or is not a file.")
        if limit is not None and size > limit:
            raise CambInputError(f"The media_file {str(path)!r} is {size} bytes; max_bytes allows {limit}.")
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self.log.info("Uploading %s (%d bytes, %s) to a new CAMB %s task.", path, size, content_type, self.kind.label)
        with path.open("rb") as file:  # type: ignore[no-untyped-call]
            parts: dict[str, Any] = {self.kind.upload: (path.name or "media", file, content_type)}
            return self.hook.create_task(request, self.kind, **parts)

    def look_for(self) -> str:
        """How a person recognises the task in CAMB.AI: its project, and the file's name or the URL's host."""
        return look_for(self.project_name, media_detail(self.media_file, self.media_url))


def media_detail(media_file: object, media_url: object) -> str:
    """``made from 'talk.wav'`` or ``made from media at host``: a create's media, shown no further than that."""
    if media_file is not None:
        return f"made from {str(media_file).rsplit('/', 1)[-1][:80]!r}"
    return f"made from media at {url_host(str(media_url))}"
