"""Apache Airflow provider for the CAMB.AI voice API."""

from __future__ import annotations

__version__ = "0.2.0"
