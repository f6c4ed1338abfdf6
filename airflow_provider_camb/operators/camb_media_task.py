"""CambMediaTaskOperator: the base of the operators whose create uploads a media file (or names a media URL)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_camb._media_file import media_to_upload, upload_parts
from airflow_provider_camb._task_memory import look_for
from airflow_provider_camb.api import url_host
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
        """Check the media (a file that exists and fits ``max_bytes``, or a URL) and the fields, then send them."""
        media = media_to_upload(
            self.kind, self.media_file, self.media_url, conn_id=self.media_conn_id, max_bytes=self.max_bytes
        )
        request = self.kind.create_request(self.kind.fields_of(self))
        if media is not None:
            self.log.info(
                "Uploading %s (%s bytes, %s) to a new CAMB %s task.",
                media.path,
                media.size,
                media.content_type,
                self.kind.label,
            )
        with upload_parts(self.kind, media) as parts:
            return self.hook.create_task(request, self.kind, **parts)

    def look_for(self) -> str:
        """How a person recognises the task in CAMB.AI: its project, and the file's name or the URL's host."""
        return look_for(self.project_name, media_detail(self.media_file, self.media_url))


def media_detail(media_file: object, media_url: object) -> str:
    """``made from 'talk.wav'`` or ``made from media at host``: a create's media, shown no further than that."""
    if media_file is not None:
        return f"made from {str(media_file).rsplit('/', 1)[-1][:80]!r}"
    return f"made from media at {url_host(str(media_url))}"
