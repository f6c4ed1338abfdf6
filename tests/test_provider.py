"""The provider as Airflow sees it: registration, the connection form, the connection test, and the
connection settings refused before any request (plain http off loopback, no key, ids that try to escape).

Runs on Airflow 3.3 and 2.11: where the two differ (where the connection form is read from), each
version has its own test and the other skips it with the reason.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import pkgutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

import airflow_provider_camb
from airflow_provider_camb.exceptions import CambInputError, CambNotFoundError
from airflow_provider_camb.get_provider_info import get_provider_info
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.settings import base_url_from
from tests import loopback_only
from tests.airflow_harness import AIRFLOW_3

PACKAGE = "airflow-provider-camb"
HOOK_CLASS = "airflow_provider_camb.hooks.camb.CambHook"
#: What the connection form must show: the key relabelled, the fields CAMB does not use hidden.
HIDDEN_FIELDS = {"schema", "port", "login"}
FAST = {"retries": 1, "backoff": 0.01, "backoff_max": 0.05, "timeout": 5}
CLI_TIMEOUT = 180


# --- helpers ---------------------------------------------------------------------------------------


def airflow_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``airflow`` command of this interpreter's environment, with this session's AIRFLOW_HOME."""
    script = Path(sys.executable).with_name("airflow")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "airflow"]
    return subprocess.run(
        [*command, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def cli_json(*args: str) -> list[dict[str, Any]]:
    """Run an ``airflow ... -o json`` listing; Airflow 2.11 may print warnings before the JSON line."""
    result = airflow_cli(*args, "-o", "json")
    assert result.returncode == 0, result.stderr[-3000:]
    for line in result.stdout.splitlines():
        if line.startswith("["):
            rows: list[dict[str, Any]] = json.loads(line)
            return rows
    raise AssertionError(f"no JSON list in the output of airflow {' '.join(args)}:\n{result.stdout[-3000:]}")


def use_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str = "camb_test", **fields: Any) -> CambHook:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "camb", **fields}))
    return CambHook(conn_id)


def runtime_hooks() -> Any:
    """The hook registry that builds hooks from connections: the task SDK's on Airflow 3."""
    if AIRFLOW_3:
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        return ProvidersManagerTaskRuntime().hooks
    from airflow.providers_manager import ProvidersManager

    return ProvidersManager().hooks


def provider_info_form() -> dict[str, Any]:
    """The provider info's ``ui-field-behaviour``, with the hook's snake_case key names."""
    (connection_type,) = get_provider_info()["connection-types"]
    form = connection_type["ui-field-behaviour"]
    return {key.replace("-", "_"): value for key, value in form.items()}


def assert_the_form_shows_an_api_key(form: dict[str, Any]) -> None:
    assert set(form["hidden_fields"]) >= HIDDEN_FIELDS
    assert "password" not in form["hidden_fields"] and "host" not in form["hidden_fields"]
    assert form["relabeling"]["password"] == "API key"
    assert form["placeholders"]["host"] == "https://client.camb.ai/apis"


# --- registration ----------------------------------------------------------------------------------


def test_the_entry_point_returns_the_provider_info_of_the_installed_version() -> None:
    entry_points = importlib.metadata.entry_points(group="apache_airflow_provider")
    (entry_point,) = [ep for ep in entry_points if ep.dist is not None and ep.dist.name == PACKAGE]
    info = entry_point.load()()
    assert info["package-name"] == PACKAGE
    assert info["versions"][0] == importlib.metadata.version(PACKAGE) == airflow_provider_camb.__version__
    assert [c["connection-type"] for c in info["connection-types"]] == ["camb"]
    assert info["connection-types"][0]["hook-class-name"] == HOOK_CLASS


def test_airflow_providers_list_shows_the_provider() -> None:
    rows = [row for row in cli_json("providers", "list") if row["package_name"] == PACKAGE]
    assert len(rows) == 1
    assert rows[0]["version"] == airflow_provider_camb.__version__


def test_airflow_providers_hooks_shows_the_camb_connection_type() -> None:
    rows = [row for row in cli_json("providers", "hooks") if row["connection_type"] == "camb"]
    assert rows == [
        {
            "connection_type": "camb",
            "class": HOOK_CLASS,
            "conn_id_attribute_name": "camb_conn_id",
            "package_name": PACKAGE,
            "hook_name": "CAMB.AI",
        }
    ]


def test_the_providers_manager_knows_the_provider_and_its_testable_hook() -> None:
    from airflow.providers_manager import ProvidersManager

    assert ProvidersManager().providers[PACKAGE].version == airflow_provider_camb.__version__
    hook_info = runtime_hooks()["camb"]
    assert hook_info is not None, "the camb hook failed to import (see the providers manager's log)"
    assert hook_info.hook_class_name == HOOK_CLASS
    assert hook_info.package_name == PACKAGE
    assert hook_info.connection_id_attribute_name == "camb_conn_id"
    assert hook_info.connection_testable


def _listed_modules() -> list[str]:
    info = get_provider_info()
    return [
        module
        for kind in ("hooks", "operators", "sensors", "triggers")
        for entry in info[kind]
        for module in entry["python-modules"]
    ]


@pytest.mark.parametrize("module", _listed_modules())
def test_every_module_in_the_provider_info_imports(module: str) -> None:
    importlib.import_module(module)


def test_the_provider_info_lists_every_public_hook_operator_sensor_and_trigger_module() -> None:
    public = {
        f"airflow_provider_camb.{kind}.{name}"
        for kind in ("hooks", "operators", "sensors", "triggers")
        for _, name, _ in pkgutil.iter_modules([str(Path(airflow_provider_camb.__file__).parent / kind)])
        if not name.startswith("_")
    }
    assert public == set(_listed_modules())


def test_the_connection_type_names_a_hook_that_declares_it() -> None:
    (connection_type,) = get_provider_info()["connection-types"]
    module, _, name = connection_type["hook-class-name"].rpartition(".")
    hook_class = getattr(importlib.import_module(module), name)
    assert hook_class is CambHook
    assert (CambHook.conn_type, CambHook.hook_name) == (
        connection_type["connection-type"],
        connection_type["hook-name"],
    )
    assert CambHook.default_conn_name == "camb_default"


# --- the connection form ---------------------------------------------------------------------------


def test_the_two_declarations_of_the_connection_form_agree() -> None:
    """Airflow 3 reads the provider info, Airflow 2 the hook: both must describe the same form."""
    assert provider_info_form() == CambHook.get_ui_field_behaviour()
    assert_the_form_shows_an_api_key(CambHook.get_ui_field_behaviour())


def test_the_providers_manager_serves_the_connection_form() -> None:
    from airflow.providers_manager import ProvidersManager

    form = ProvidersManager().field_behaviours["camb"]
    assert_the_form_shows_an_api_key(form)


_UI_FORM_PROBE = """
import json, sys
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
(meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "camb"]
print(json.dumps({
    "hook_name": meta.hook_name,
    "hook_class_name": meta.hook_class_name,
    "standard_fields": meta.standard_fields.model_dump(),
    "hook_module_imported": "airflow_provider_camb.hooks.camb" in sys.modules,
}))
"""


@pytest.mark.skipif(not AIRFLOW_3, reason="Airflow 2 builds the form from CambHook.get_ui_field_behaviour")
def test_airflow_3_ui_builds_the_form_from_the_provider_info_without_importing_the_hook() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _UI_FORM_PROBE],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads(result.stdout.strip().splitlines()[-1])
    assert meta["hook_name"] == "CAMB.AI" and meta["hook_class_name"] == HOOK_CLASS
    fields = meta["standard_fields"]
    assert fields["password"]["title"] == "API key" and not fields["password"]["hidden"]
    assert fields["host"]["placeholder"] == "https://client.camb.ai/apis" and not fields["host"]["hidden"]
    for name in ("login", "port", "url_schema"):
        assert fields[name]["hidden"], name
    assert not meta["hook_module_imported"], "the form came from the hook, not from get_provider_info()"


@pytest.mark.skipif(AIRFLOW_3, reason="Airflow 3 reads the form from get_provider_info's ui-field-behaviour")
def test_airflow_2_reads_the_form_from_the_hook() -> None:
    from airflow.providers_manager import ProvidersManager

    assert ProvidersManager().field_behaviours["camb"] == CambHook.get_ui_field_behaviour()


# --- test_connection -------------------------------------------------------------------------------


def test_test_connection_succeeds_with_the_right_key(camb_connection: Any) -> None:
    ok, message = CambHook().test_connection()
    assert ok is True, message
    assert message.startswith(f"Connected to CAMB.AI at {camb_connection.base_url}")
    (request,) = camb_connection.requests("languages")
    assert request.method == "GET" and request.path == "/source-languages"
    assert request.headers["x-api-key"] == camb_connection.api_key
    assert camb_connection.request_count() == 1


def test_test_connection_fails_on_a_wrong_key_naming_the_key_problem_not_the_key(
    camb_standin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong_key = "wrong-" + uuid.uuid4().hex
    hook = use_connection(monkeypatch, host=camb_standin.base_url, password=wrong_key)
    ok, message = hook.test_connection()
    assert ok is False
    assert "API key" in message and "401" in message and "camb_test" in message
    assert wrong_key not in message and camb_standin.api_key not in message
    assert camb_standin.request_count("languages") == 1  # an auth failure is not retried


def test_test_connection_fails_when_nothing_listens_at_the_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = use_connection(monkeypatch, host=f"http://127.0.0.1:{loopback_only.free_port()}", password="k", extra=FAST)
    ok, message = hook.test_connection()
    assert ok is False
    assert message.startswith("Could not reach CAMB") and "base URL" in message


def test_test_connection_reports_a_bad_configuration_without_a_request(
    camb_standin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = use_connection(monkeypatch, host=camb_standin.base_url, password="")
    ok, message = hook.test_connection()
    assert ok is False and "no API key" in message
    assert camb_standin.request_count() == 0


@pytest.mark.parametrize("right_key", [True, False], ids=["right-key", "wrong-key"])
def test_a_connection_tested_the_way_the_ui_does(camb_standin: Any, right_key: bool) -> None:
    """The UI's test button: an unsaved Connection, exported as a URI under a temporary id, then tested."""
    from airflow.models.connection import Connection

    key = camb_standin.api_key if right_key else "wrong-" + uuid.uuid4().hex
    conn_id = "camb_ui_" + uuid.uuid4().hex[:8]
    conn = Connection(conn_id=conn_id, conn_type="camb", host=camb_standin.base_url, password=key)
    env_var = f"AIRFLOW_CONN_{conn_id.upper()}"
    os.environ[env_var] = conn.get_uri()
    try:
        ok, message = conn.test_connection()
    finally:
        del os.environ[env_var]
    assert ok is right_key, message
    assert key not in message
    assert camb_standin.request_count("languages") == 1


@pytest.mark.parametrize("right_key", [True, False], ids=["right-key", "wrong-key"])
def test_airflow_connections_test_command(camb_standin: Any, right_key: bool) -> None:
    key = camb_standin.api_key if right_key else "wrong-" + uuid.uuid4().hex
    connection = {"conn_type": "camb", "host": camb_standin.base_url, "password": key}
    result = airflow_cli(
        "connections",
        "test",
        "camb_cli",
        env={"AIRFLOW__CORE__TEST_CONNECTION": "Enabled", "AIRFLOW_CONN_CAMB_CLI": json.dumps(connection)},
    )
    output = result.stdout + result.stderr
    if right_key:
        assert result.returncode == 0, output[-3000:]
        assert "Connection success!" in output
    else:
        # Airflow 2.11's command prints the failure but exits 0; Airflow 3 exits 1.
        assert result.returncode == (1 if AIRFLOW_3 else 0), output[-3000:]
        assert "Connection failed!" in output and "refused the API key" in output
    assert key not in output
    assert camb_standin.request_count("languages") == 1


# --- settings refused before any request -----------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "http://camb.example.com",
        "http://127.0.0.1.example.com:8765",  # starts like loopback, is not
        "http://localhost.example.com/apis",
        "http://192.168.1.20:8765",
        "HTTP://10.0.0.5",
        "http://[fe80::1]:8765",
        "http://169.254.169.254",
    ],
)
def test_plain_http_off_loopback_is_refused_by_the_url_rule(host: str) -> None:
    """The rule on the parsed URL alone: no hook, no request, no name looked up."""
    with pytest.raises(CambInputError) as error:
        base_url_from(host, None, "camb_test")
    message = str(error.value)
    assert "plain http" in message and "https" in message and "camb_test" in message


@pytest.mark.parametrize("host", ["https://camb.example.com/apis", "camb.example.com", "https://10.0.0.5"])
def test_https_is_accepted_by_the_url_rule_anywhere(host: str) -> None:
    assert base_url_from(host, None, "camb_test").startswith("https://")


def test_plain_http_off_loopback_sends_nothing(camb_standin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused before any socket opens: the loopback guard saw no attempt, the stand-in no request.

    The address is on this machine's stand-in port but a private range: had the check failed, the
    loopback guard (tests/loopback_only.py) would have refused the connect and recorded it.
    """
    refused_before = len(loopback_only.REFUSED)
    hook = use_connection(monkeypatch, host=f"http://10.0.0.5:{camb_standin.port}", password=camb_standin.api_key)
    with pytest.raises(CambInputError, match="plain http") as error:
        hook.get_task_status("text-to-voice", "abc")
    assert "10.0.0.5" in str(error.value) and camb_standin.api_key not in str(error.value)
    with pytest.raises(CambInputError, match="plain http"):
        hook.create_text_to_voice("Hello.", "A calm voice. " * 10)
    assert hook.test_connection()[0] is False
    assert loopback_only.REFUSED[refused_before:] == []
    assert camb_standin.request_count() == 0


def test_the_loopback_guard_refuses_other_addresses_without_sending() -> None:
    """The guard itself: a connect or bind off loopback fails before the system call, and is recorded."""
    refused_before = len(loopback_only.REFUSED)
    with socket.socket() as sock, pytest.raises(loopback_only.NotLoopbackError):
        sock.connect(("10.0.0.5", 9))
    with socket.socket() as sock, pytest.raises(loopback_only.NotLoopbackError):
        sock.bind(("0.0.0.0", 0))  # noqa: S104
    with socket.socket() as sock, pytest.raises(loopback_only.NotLoopbackError):
        sock.connect_ex(("169.254.169.254", 80))
    with socket.socket(socket.AF_INET6) as sock, pytest.raises(loopback_only.NotLoopbackError):
        sock.connect(("::ffff:10.0.0.5", 9, 0, 0))
    assert [host for _, host in loopback_only.REFUSED[refused_before:]] == [
        "10.0.0.5",
        "0.0.0.0",  # noqa: S104
        "169.254.169.254",
        "::ffff:10.0.0.5",
    ]
    assert loopback_only.is_loopback_address(("127.0.0.2", 80)) and loopback_only.is_loopback_address(("::1", 80))
    assert loopback_only.is_loopback_address(("::ffff:127.0.0.1", 80, 0, 0))


@pytest.mark.parametrize("host", ["http://127.0.0.1", "http://localhost", "http://[::1]", "http://127.0.0.2"])
def test_plain_http_to_loopback_is_allowed(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert use_connection(monkeypatch, host=f"{host}:8765", password="k").settings.base_url == f"{host}:8765"


@pytest.mark.parametrize("fields", [{"password": ""}, {"password": "  \t"}, {}], ids=["empty", "blank", "missing"])
def test_a_connection_without_a_key_is_refused_before_any_request(
    camb_standin: Any, monkeypatch: pytest.MonkeyPatch, fields: dict[str, str]
) -> None:
    hook = use_connection(monkeypatch, host=camb_standin.base_url, **fields)
    with pytest.raises(CambInputError, match=r"no API key: put your CAMB\.AI API key in its Password field"):
        hook.get_task_status("text-to-voice", "abc")
    with pytest.raises(CambInputError, match="no API key"):
        hook.create_text_to_voice("Hello.", "A calm voice. " * 10)
    assert camb_standin.request_count() == 0


def test_a_task_id_like_dot_dot_slash_x_stays_inside_its_path(camb_connection: Any) -> None:
    """``../x`` is sent encoded (CAMB task ids are opaque strings): it reaches the status endpoint, no other."""
    with pytest.raises(CambNotFoundError, match=r"CAMB text-to-voice task '\.\./x'"):
        CambHook().get_task_status("text-to-voice", "../x")
    (request,) = camb_connection.requests()
    assert (request.endpoint, request.path_id) == ("status", "../x")
    assert request.path == "/text-to-voice/%2E%2E%2Fx"


def test_a_run_id_like_dot_dot_slash_x_is_refused_before_any_request(camb_connection: Any, tmp_path: Path) -> None:
    hook = CambHook()
    with pytest.raises(CambInputError, match="whole number"):
        hook.get_text_to_voice_result("../x")
    audio = tmp_path / "voice.wav"
    audio.write_bytes(b"RIFF")
    with pytest.raises(CambInputError, match="whole number"):
        hook.create_custom_voice(audio, "narrator", 2, run_id="../x")
    assert camb_connection.request_count() == 0
