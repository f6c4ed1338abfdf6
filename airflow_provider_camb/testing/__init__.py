"""A local stand-in of the CAMB.AI API, for tests and DAG runs without an account or a network.

``with CambStandIn() as camb:`` then point the ``camb_default`` connection at it with
``AIRFLOW_CONN_CAMB_DEFAULT=camb.connection_json()``; or run ``python -m airflow_provider_camb.testing``.
Pytest fixtures: ``pytest_plugins = ["airflow_provider_camb.testing.pytest_plugin"]``.
"""

from airflow_provider_camb.testing.client import CambStandInClient
from airflow_provider_camb.testing.server import ENDPOINTS, FAULTS, CambStandIn, RecordedRequest

__all__ = ["ENDPOINTS", "FAULTS", "CambStandIn", "CambStandInClient", "RecordedRequest"]
