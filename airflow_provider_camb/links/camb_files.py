"""``CambFilesLink``: the button on a CAMB result task that opens its "CAMB files" view in the Airflow UI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink

from airflow_provider_camb.plugins._urls import ui_url

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey


class CambFilesLink(BaseOperatorLink):
    """Opens the task instance's "CAMB files" tab, where each file it wrote plays (Airflow 3.1+)."""

    name = "CAMB files"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        return ui_url(ti_key.dag_id, ti_key.run_id, ti_key.task_id, ti_key.map_index)
