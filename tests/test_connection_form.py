"""The connection form shows every extra as a typed field: Airflow 3 from the provider info's ``conn-fields``
(served by the API server's ``/ui/connections/hook_meta``), Airflow 2 from ``get_connection_form_widgets``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_camb.get_provider_info import get_provider_info
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.settings import settings_from
from tests.airflow_harness import AIRFLOW_3

EXTRAS = {"timeout", "retries", "backoff", "backoff_max", "max_requests_per_second", "max_reply_bytes"}
TYPES = {"timeout": "number", "retries": "integer", "backoff": "number", "backoff_max": "number"}
TYPES["max_requests_per_second"] = "number"
TYPES["max_reply_bytes"] = "integer"


def conn_fields() -> dict[str, Any]:
    (connection_type,) = get_provider_info()["connection-types"]
    fields: dict[str, Any] = connection_type["conn-fields"]
    return fields


def test_the_provider_info_declares_every_extra_with_a_label_a_description_and_a_schema() -> None:
    fields = conn_fields()
    assert set(fields) == EXTRAS
    for name, field in fields.items():
        assert field["label"] and field["description"], name
        assert field["schema"]["type"] == [TYPES[name], "null"], name  # empty: the default


def test_every_field_is_an_extra_the_settings_read() -> None:
    """A value the form accepts is one settings_from accepts, and lands on the setting of the same name."""
    values = {"timeout": 12.5, "retries": 7, "backoff": 0.5, "backoff_max": 9, "max_requests_per_second": 40}
    values["max_reply_bytes"] = 4 * 1024 * 1024
    settings = settings_from("c", None, None, "key", values)
    assert {name: getattr(settings, name) for name in conn_fields()} == values


_HOOK_META_PROBE = """
import json
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app
with TestClient(create_app()) as client:
    reply = client.get("/ui/connections/hook_meta")
    reply.raise_for_status()
    (camb,) = [meta for meta in reply.json() if meta["connection_type"] == "camb"]
    print(json.dumps(camb))
"""


@pytest.mark.skipif(not AIRFLOW_3, reason="Airflow 2 has no /ui/connections/hook_meta")
def test_airflow_3_hook_meta_lists_every_extra_as_a_typed_field(airflow_home: Path) -> None:
    env = {
        **os.environ,
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API_AUTH__JWT_SECRET": "a-test-secret-for-the-form-probe",
    }
    result = subprocess.run(
        [sys.executable, "-c", _HOOK_META_PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads(result.stdout.strip().splitlines()[-1])
    extra = meta["extra_fields"]
    assert set(extra) == EXTRAS
    for name, field in extra.items():
        declared = conn_fields()[name]
        assert field["schema"]["title"] == declared["label"], name
        assert field["description"] == declared["description"], name
        assert field["schema"]["type"] == [TYPES[name], "null"], name
        assert field["value"] is None, name  # an untouched field stores nothing: the default applies
    assert meta["standard_fields"]["password"]["title"] == "API key"


@pytest.mark.skipif(AIRFLOW_3, reason="Airflow 3 reads conn-fields from the provider info")
def test_airflow_2_reads_every_extra_from_the_hooks_form_widgets() -> None:
    from airflow.providers_manager import ProvidersManager

    widgets = {
        info.field_name: info
        for key, info in ProvidersManager().connection_form_widgets.items()
        if key.startswith("extra__camb__")
    }
    assert set(widgets) == EXTRAS
    for name, info in widgets.items():
        field = info.field
        assert str(field.args[0]) == conn_fields()[name]["label"], name
        assert str(field.kwargs["description"]) == conn_fields()[name]["description"], name
        expected = "IntegerField" if TYPES[name] == "integer" else "StringField"
        assert field.field_class.__name__ == expected, name


@pytest.mark.skipif(AIRFLOW_3, reason="Airflow 2's form widgets need Flask-AppBuilder, which Airflow 3 lacks")
def test_airflow_2_form_refuses_text_that_is_not_a_number() -> None:
    from flask import Flask
    from werkzeug.datastructures import MultiDict
    from wtforms import Form

    widgets = CambHook.get_connection_form_widgets()
    form_class = type("CambForm", (Form,), dict(widgets))
    with Flask(__name__).test_request_context():
        good = form_class(formdata=MultiDict({"timeout": "2.5", "retries": "3", "max_requests_per_second": ""}))
        bad = form_class(formdata=MultiDict({"timeout": "fast", "retries": "3"}))
        assert good.validate(), good.errors
        assert not bad.validate() and "timeout" in bad.errors
