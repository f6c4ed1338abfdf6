"""UploadingBatch: the batch core for kinds whose items upload their media (transcription, audio separation)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_camb._media_file import MediaFile, media_to_upload
from airflow_provider_camb.api import ApiRequest
from airflow_provider_camb.operators.camb_batch import CambBatchOperator


class UploadingBatch(CambBatchOperator):
    """A batch whose items name their media by ``media_file``, uploaded with the item's one create request,
    or, where the kind takes one, by ``media_url`` (exactly one of them per item).

    A ``media_file`` is a local path or an object storage URI, read with ``media_conn_id`` or with the
    connection its URI names (``s3://conn_id@bucket/key``). Before any request, every item's file is checked
    to exist (a missing file fails the task, naming the item); later resumes of the same try only open each
    file when its create is sent. Without a ``key``, an item's key covers the file's name, not its folder.

    :param media_conn_id: The Airflow connection that reads the items' ``media_file`` from object storage.
    """

    def __init__(self, *, media_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.media_conn_id = media_conn_id

    def item_request(self, fields: Mapping[str, Any]) -> ApiRequest:
        return super().item_request({name: value for name, value in fields.items() if name != "media_file"})

    def item_media(self, fields: Mapping[str, Any], *, look: bool) -> MediaFile | None:
        return media_to_upload(
            self.kind, fields.get("media_file"), fields.get("media_url"), conn_id=self.media_conn_id, look=look
        )
