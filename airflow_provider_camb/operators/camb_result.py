"""CambResultOperator: the base of every operator that saves the result of a CAMB run to storage."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_camb._storage import destination_folder
from airflow_provider_camb.api import check_run_id, whole_number
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.links.camb_files import CambFilesLink
from airflow_provider_camb.operators._base import CambOperator
from airflow_provider_camb.version_compat import AIRFLOW_V_3_1_PLUS

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class CambResultOperator(CambOperator):
    """Save what a CAMB run made into a local folder or object storage (``save``, written by each kind).

    The run id is checked and the destination resolved before any request is sent; the files of a
    result go through ``_storage.result_files`` (all of them whole, or none at all), and
    ``record_result`` reports the files to lineage and to the asset events of the operator's ``outlets``.
    On Airflow 3.1+ the task's "CAMB files" link opens the provider's view, where each file it wrote plays.

    :param run_id: The CAMB run id, e.g. the XCom of a sensor or a waiting create operator (templated).
    :param destination: Folder or object storage URI to write to (templated).
    :param destination_conn_id: The Airflow connection that writes to ``destination`` (e.g. an ``aws``
        connection for ``s3://``), as ``s3://conn_id@bucket/path`` would name it. Without either, the
        storage library's own default credentials and endpoint apply.
    :param camb_conn_id: The Airflow connection of type ``camb``.
    :param max_bytes: Refuse any downloaded file larger than this many bytes (``CambReplyTooLargeError``,
        nothing written); None (the default): no limit.
    """

    template_fields: Sequence[str] = ("run_id", "destination")
    ui_color = "#dff5e6"
    operator_extra_links = (CambFilesLink(),) if AIRFLOW_V_3_1_PLUS else ()

    def __init__(
        self,
        *,
        run_id: int | str,
        destination: str | os.PathLike[str],
        destination_conn_id: str | None = None,
        camb_conn_id: str = CambHook.default_conn_name,
        max_bytes: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(camb_conn_id=camb_conn_id, **kwargs)
        self.run_id = run_id
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.max_bytes = max_bytes

    def check_input(self) -> None:
        """Refuse this operator's own bad input before anything is sent (override when there is any)."""

    def execute(self, context: Context) -> Any:
        run_id = check_run_id(self.run_id)
        whole_number("max_bytes", self.max_bytes, optional=True)
        self.check_input()
        return self.save(context, run_id, destination_folder(self.destination, conn_id=self.destination_conn_id))

    def save(self, context: Context, run_id: int, folder: ObjectStoragePath) -> Any:
        """Fetch the run's result and write it into ``folder``; return what to push as XCom."""
        raise NotImplementedError
