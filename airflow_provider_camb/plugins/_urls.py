"""Where the CAMB files view lives: the plugin app's prefix, the UI tab's route and the links to both.

Kept apart from the plugin so that an operator (on a worker) builds its extra link without importing
FastAPI or the API server.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from airflow.providers.common.compat.sdk import conf

#: The path under the API server where the plugin's FastAPI app is mounted.
APP_PREFIX = "/camb"
#: The route of the "CAMB files" tab on a task instance page (``.../plugin/<route>``).
UI_ROUTE = "camb-files"


def _base(absolute: bool) -> str:
    """``[api] base_url`` without its trailing slash: whole (``absolute``) or only its path."""
    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    return base if absolute or "://" not in base else urlsplit(base).path.rstrip("/")


def view_href() -> str:
    """The external view's ``href``, with the tokens the UI fills in for each task instance."""
    return f"{_base(absolute=False)}{APP_PREFIX}/files/{{DAG_ID}}/{{RUN_ID}}/{{TASK_ID}}/{{MAP_INDEX}}"


def ui_url(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """The Airflow UI page of one task instance, opened on its "CAMB files" tab."""
    task = f"{_base(absolute=True)}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/"
    task += quote(task_id, safe="")
    if map_index >= 0:
        task += f"/mapped/{map_index}"
    return f"{task}/plugin/{UI_ROUTE}"
