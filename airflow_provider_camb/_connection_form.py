"""The ``camb`` connection: its defaults and its form, declared once as plain data.

Airflow 3 reads the form from the provider info (``ui-field-behaviour`` and ``conn-fields``) without
importing the hook; Airflow 2 asks the hook (``get_ui_field_behaviour``, ``get_connection_form_widgets``).
Both are built from the tables below, and ``api.settings_from`` validates what the fields hold.
This module imports nothing from Airflow, so reading the provider info stays cheap.
"""

from __future__ import annotations

from typing import Any

DEFAULT_BASE_URL = "https://client.camb.ai/apis"
DEFAULT_TIMEOUT = 60.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 1.0
DEFAULT_BACKOFF_MAX = 30.0
#: The largest JSON reply (status, create, result) read before it is refused; the extra max_reply_bytes raises it.
DEFAULT_MAX_REPLY_BYTES = 1024 * 1024
MIN_REPLY_BYTES = 1024
#: No cap by default: the shared limiter learns CAMB's (unpublished) limit from its 429 replies.
DEFAULT_MAX_REQUESTS_PER_SECOND = None

#: The standard fields: the key relabelled, the ones CAMB does not use hidden (Airflow 2 spelling).
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": ["schema", "port", "login"],
    "relabeling": {"password": "API key", "host": "Base URL (optional)"},
    "placeholders": {
        "host": DEFAULT_BASE_URL,
        "password": "your CAMB.AI API key",
        "extra": '{"timeout": 60, "retries": 3}',
    },
}

#: Every connection extra as a typed field, in Airflow 3's ``conn-fields`` format (JSON schema per field).
#: An empty field means the default named in its description.
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "timeout": {
        "label": "Request timeout (seconds)",
        "description": f"Each request to CAMB gives up after this many seconds (default {DEFAULT_TIMEOUT:g}).",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
    "retries": {
        "label": "Retries",
        "description": (
            f"How often a request that met a passing fault (network error, 429, 5xx) is tried again "
            f"(default {DEFAULT_RETRIES}). A deferred wait retries until its deadline instead."
        ),
        "schema": {"type": ["integer", "null"], "minimum": 0},
    },
    "backoff": {
        "label": "Retry backoff (seconds)",
        "description": (
            f"First wait before a retry; it doubles with each retry, with jitter (default {DEFAULT_BACKOFF:g}). "
            "A Retry-After from CAMB takes precedence."
        ),
        "schema": {"type": ["number", "null"], "minimum": 0},
    },
    "backoff_max": {
        "label": "Longest retry backoff (seconds)",
        "description": f"The wait between retries never grows beyond this (default {DEFAULT_BACKOFF_MAX:g}).",
        "schema": {"type": ["number", "null"], "minimum": 0},
    },
    "max_requests_per_second": {
        "label": "Max status requests per second",
        "description": (
            "Cap on the status polls per second that all waits on this API key send from one triggerer "
            "(polls beyond it are delayed, never dropped). Empty: no cap; the provider learns CAMB's limit "
            "from its 429 replies and stays just under it."
        ),
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
    "max_reply_bytes": {
        "label": "Largest API reply (bytes)",
        "description": (
            f"A JSON reply from CAMB (status, create, result) larger than this is refused without reading the rest "
            f"(default {DEFAULT_MAX_REPLY_BYTES}, 1 MiB). Downloads are limited by the result operators' max_bytes."
        ),
        "schema": {"type": ["integer", "null"], "minimum": MIN_REPLY_BYTES},
    },
}


def provider_info_connection_form() -> dict[str, Any]:
    """The form in the provider info's spelling: ``ui-field-behaviour`` (kebab-case keys) and ``conn-fields``."""
    return {
        "ui-field-behaviour": {key.replace("_", "-"): value for key, value in UI_FIELD_BEHAVIOUR.items()},
        "conn-fields": CONN_FIELDS,
    }


def connection_form_widgets() -> dict[str, Any]:
    """The same fields as WTForms widgets, for Airflow 2's connection form (needs Flask-AppBuilder)."""
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import IntegerField, StringField
    from wtforms.validators import NumberRange, Optional, Regexp

    widgets: dict[str, Any] = {}
    for name, spec in CONN_FIELDS.items():
        label, description = lazy_gettext(spec["label"]), lazy_gettext(spec["description"])
        if "integer" in spec["schema"]["type"]:
            validators: list[Any] = [Optional(), NumberRange(min=spec["schema"].get("minimum"))]
            widgets[name] = IntegerField(
                label, validators=validators, description=description, widget=BS3TextFieldWidget()
            )
        else:  # Airflow 2 allows no float field: a number typed as text, checked here and by settings_from
            number = Regexp(r"^\s*\d+(\.\d*)?\s*$|^\s*\.\d+\s*$", message="Enter a number, e.g. 1.5")
            widgets[name] = StringField(
                label, validators=[Optional(), number], description=description, widget=BS3TextFieldWidget()
            )
    return widgets
