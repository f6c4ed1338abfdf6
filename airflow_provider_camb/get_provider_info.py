"""Provider metadata, registered through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_camb import __version__
from airflow_provider_camb._connection_form import provider_info_connection_form


def get_provider_info() -> dict[str, Any]:
    """Describe the package, its connection type and its modules to Airflow's providers manager."""
    return {
        "package-name": "airflow-provider-camb",
        "name": "CAMB.AI",
        "description": (
            "CAMB.AI voice tasks: design and keep voices, speak, dub, make sounds; create, wait, save, one by one "
            "or in batches."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "CAMB.AI",
                "external-doc-url": "https://docs.camb.ai/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "CAMB.AI", "python-modules": ["airflow_provider_camb.hooks.camb"]}],
        "operators": [
            {
                "integration-name": "CAMB.AI",
                "python-modules": [
                    "airflow_provider_camb.operators.camb_task",
                    "airflow_provider_camb.operators.camb_media_result",
                    "airflow_provider_camb.operators.camb_result",
                    "airflow_provider_camb.operators.text_to_voice",
                    "airflow_provider_camb.operators.text_to_speech",
                    "airflow_provider_camb.operators.dubbing",
                    "airflow_provider_camb.operators.text_to_sound",
                    "airflow_provider_camb.operators.camb_batch",
                    "airflow_provider_camb.operators.batch",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "CAMB.AI",
                "python-modules": [
                    "airflow_provider_camb.sensors.camb_task",
                    "airflow_provider_camb.sensors.text_to_voice",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": "CAMB.AI",
                "python-modules": [
                    "airflow_provider_camb.triggers.camb_task",
                    "airflow_provider_camb.triggers.text_to_voice",
                    "airflow_provider_camb.triggers.camb_batch",
                ],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_camb.hooks.camb.CambHook",
                "hook-name": "CAMB.AI",
                "connection-type": "camb",
                **provider_info_connection_form(),
            }
        ],
    }
