"""Which Airflow runs the provider, for the features a release before 3.1 cannot have."""

from __future__ import annotations

from airflow import __version__ as _airflow_version
from packaging.version import Version

AIRFLOW_VERSION = Version(Version(_airflow_version).base_version)
#: Human-in-the-loop operators and UI plugin views (external views, FastAPI apps) came with Airflow 3.1.
AIRFLOW_V_3_1_PLUS = Version("3.1") <= AIRFLOW_VERSION


def require_airflow_3_1(feature: str, instead: str) -> None:
    """Raise ``CambAirflowVersionError`` naming ``feature`` and what to do ``instead`` before Airflow 3.1."""
    if AIRFLOW_V_3_1_PLUS:
        return
    from airflow_provider_camb.exceptions import CambAirflowVersionError

    raise CambAirflowVersionError(
        f"{feature} needs Airflow 3.1+ (human-in-the-loop operators and UI plugin views); this is Airflow "
        f"{_airflow_version}. {instead}"
    )
