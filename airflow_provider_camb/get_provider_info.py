"""Provider metadata, registered through the ``apache_airflow_provider`` entry point.

The modules are found, not listed: the public modules of ``hooks``, ``operators``, ``sensors`` and
``triggers``. Airflow calls this while it configures itself, so nothing here imports Airflow (nor ``kinds``).
"""

from __future__ import annotations

import pkgutil
from pathlib import Path
from typing import Any

from airflow_provider_camb import __version__
from airflow_provider_camb._connection_form import provider_info_connection_form

_PACKAGE = Path(__file__).parent


def _modules(layer: str) -> list[dict[str, Any]]:
    """The public modules of one layer (``operators``, ...), found without importing them."""
    names = sorted(name for _, name, _ in pkgutil.iter_modules([str(_PACKAGE / layer)]) if not name.startswith("_"))
    return [{"integration-name": "CAMB.AI", "python-modules": [f"airflow_provider_camb.{layer}.{n}" for n in names]}]


def get_provider_info() -> dict[str, Any]:
    """Describe the package, its connection type and its modules to Airflow's providers manager."""
    return {
        "package-name": "airflow-provider-camb",
        "name": "CAMB.AI",
        "description": (
            "CAMB.AI voice tasks: design and keep voices, speak, dub, make sounds, translate, transcribe, separate "
            "voice from background; create, wait, save, one by one or in batches."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "CAMB.AI",
                "external-doc-url": "https://docs.camb.ai/",
                "tags": ["service"],
            }
        ],
        "hooks": _modules("hooks"),
        "operators": _modules("operators"),
        "sensors": _modules("sensors"),
        "triggers": _modules("triggers"),
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_camb.hooks.camb.CambHook",
                "hook-name": "CAMB.AI",
                "connection-type": "camb",
                **provider_info_connection_form(),
            }
        ],
    }
