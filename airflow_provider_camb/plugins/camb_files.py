"""``CambFilesPlugin``: the "CAMB files" tab on every task instance, where the files a CAMB task wrote play.

Registered through the ``airflow.plugins`` entry point (read whether or not providers load lazily).
It adds an external view on task instances (listed by ``/api/v2/plugins``, its ``href`` carrying the
``{DAG_ID}``, ``{RUN_ID}``, ``{TASK_ID}`` and ``{MAP_INDEX}`` tokens the UI fills in) and the FastAPI app
that serves it (``_app``), built only when the API server asks for it: the scheduler, triggerer and
workers never import FastAPI for it. Airflow before 3.1 has no plugin views: there ``CambFilesPlugin``
is ``None``, which Airflow's plugin manager skips, so nothing is loaded.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow_provider_camb.plugins._urls import APP_PREFIX, UI_ROUTE, view_href
from airflow_provider_camb.version_compat import AIRFLOW_V_3_1_PLUS

CambFilesPlugin: Any = None

if AIRFLOW_V_3_1_PLUS:
    from airflow.plugins_manager import AirflowPlugin

    class _CambFilesPlugin(AirflowPlugin):
        """The "CAMB files" view: an external view on task instances and the app behind it."""

        name = "camb_files"
        external_views = [  # noqa: RUF012  # Airflow's own attribute, a list by its definition
            {
                "name": "CAMB files",
                "href": view_href(),
                "destination": "task_instance",
                "url_route": UI_ROUTE,
            }
        ]

        @cached_property
        def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
            from airflow_provider_camb.plugins._app import create_app

            return [{"app": create_app(), "url_prefix": APP_PREFIX, "name": "CAMB.AI files"}]

    CambFilesPlugin = _CambFilesPlugin
