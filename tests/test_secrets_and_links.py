"""The API key and the bearer links, over real HTTP to the stand-in.

- the hook registers the key with Airflow's secrets masker itself (sync and async paths), so it is
  masked even where Airflow's own connection loading did not see it;
- no request that carries the key follows a redirect: a second stand-in, where the redirect points,
  receives nothing (sync and async status, create, result, a speech stream, a custom voice upload);
- a storage link (no key) that redirects is followed, and the key does not appear there either, not
  even when the redirect points at the API host itself;
- a storage host answering 401 or 403 to a link gives "the link expired or was refused", not "check the key".
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import redact

from airflow_provider_camb.exceptions import CambApiError, CambLinkRefusedError
from airflow_provider_camb.hooks import camb as camb_hook_module
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.operators.text_to_speech import CambTextToSpeechResultOperator
from airflow_provider_camb.operators.text_to_voice import TextToVoiceResultOperator
from airflow_provider_camb.testing import CambStandIn
from tests.shared import DESCRIPTION, TEXT, context, finished_run

# --- the secrets masker ---------------------------------------------------------------------------------


def fresh_key() -> str:
    """A key no test registered before (other tests' short secrets may still mask parts of it: Airflow 2 masks
    even one-letter passwords), so the checks below compare the whole key with ``***``."""
    return "Zq9" + secrets.token_hex(16)


def plain_connection(standin: CambStandIn, key: str) -> SimpleNamespace:
    """A connection object as a secrets backend might hand it over: nothing has masked its password yet."""
    return SimpleNamespace(host=standin.base_url, port=None, password=key, extra_dejson={})


def test_reading_the_settings_registers_the_key_with_the_secrets_masker(camb_standin, monkeypatch):
    key = fresh_key()
    monkeypatch.setattr(
        CambHook, "get_connection", classmethod(lambda cls, conn_id: plain_connection(camb_standin, key))
    )
    assert redact(key) != "***"  # not known to the masker yet
    assert CambHook("camb_unmasked").settings.api_key == key
    assert redact(key) == "***"


def test_the_async_path_registers_the_key_too(camb_standin, monkeypatch):
    key = fresh_key()

    async def connection(conn_id: str, hook: Any = None) -> SimpleNamespace:
        return plain_connection(camb_standin, key)

    async def extra(conn: Any) -> dict[str, Any]:
        return {}

    monkeypatch.setattr(camb_hook_module, "get_async_connection", connection)
    monkeypatch.setattr(camb_hook_module, "get_async_extra_dejson", extra)
    assert redact(key) != "***"
    assert asyncio.run(CambHook("camb_unmasked_async").asettings()).api_key == key
    assert redact(key) == "***"


# --- never across a redirect ------------------------------------------------------------------------------


@pytest.fixture
def elsewhere(camb_standin_factory) -> CambStandIn:
    """Another host (a second stand-in): where the redirects point. It records whatever reaches it."""
    return camb_standin_factory()


def redirect_to(standin: CambStandIn, target: CambStandIn, endpoint: str, path: str) -> None:
    standin.inject("redirect", endpoint=endpoint, location=f"{target.base_url}{path}")


def _status(hook: CambHook, standin: CambStandIn, tmp_path: Path) -> object:
    return hook.get_task_status("text-to-voice", standin.add_task(status="SUCCESS"))


def _async_status(hook: CambHook, standin: CambStandIn, tmp_path: Path) -> object:
    return asyncio.run(hook.aget_task_status("text-to-voice", standin.add_task(status="SUCCESS")))


def _create(hook: CambHook, standin: CambStandIn, tmp_path: Path) -> object:
    return hook.create_text_to_voice(TEXT, DESCRIPTION)


def _result(hook: CambHook, standin: CambStandIn, tmp_path: Path) -> object:
    return hook.get_text_to_voice_result(finished_run(standin))


def _speech(hook: CambHook, standin: CambStandIn, tmp_path: Path) -> object:
    return CambTextToSpeechResultOperator(
        task_id="save", run_id=finished_run(standin, "tts"), destination=tmp_path
    ).execute(context())


def _custom_voice(hook: CambHook, standin: CambStandIn, tmp_path: Path) -> object:
    audio = tmp_path / "voice.wav"
    audio.write_bytes(b"RIFF0000WAVE")
    return hook.create_custom_voice(audio, "Narrator", 1)


CALLS_WITH_THE_KEY = {
    "status": (_status, "status", "/text-to-voice/x"),
    "status, async": (_async_status, "status", "/text-to-voice/x"),
    "create": (_create, "create", "/text-to-voice"),
    "result": (_result, "result", "/text-to-voice-result/1"),
    "speech stream": (_speech, "result", "/tts-result/1"),
    "custom voice": (_custom_voice, "custom_voice", "/create-custom-voice"),
}


@pytest.mark.parametrize(("call", "endpoint", "path"), CALLS_WITH_THE_KEY.values(), ids=CALLS_WITH_THE_KEY)
def test_a_request_with_the_key_never_follows_a_redirect(camb_connection, elsewhere, tmp_path, call, endpoint, path):
    redirect_to(camb_connection, elsewhere, endpoint, path)
    with CambHook() as hook, pytest.raises(CambApiError, match="CAMB replied HTTP 307 while"):
        call(hook, camb_connection, tmp_path)
    assert [r.status for r in camb_connection.requests(endpoint)] == [307]  # asked once, not retried
    assert elsewhere.requests() == [] and elsewhere.request_count() == 0  # the key went nowhere else
    assert [p for p in tmp_path.iterdir() if p.name != "voice.wav"] == []


def test_a_storage_link_that_redirects_is_followed_without_the_key_even_to_the_api_host(camb_connection, tmp_path):
    run_id = finished_run(camb_connection)
    # The first preview's storage host sends the client to the API itself, which would take the key.
    redirect_to(camb_connection, camb_connection, "preview", "/source-languages")
    with pytest.raises(CambLinkRefusedError, match="the link expired or was refused"):
        TextToVoiceResultOperator(task_id="save", run_id=run_id, destination=tmp_path).execute(context())
    (preview,) = camb_connection.requests("preview")
    (followed,) = camb_connection.requests("languages")  # the redirect was followed ...
    assert (preview.status, followed.status) == (307, 401)  # ... and the API host saw no key
    assert "x-api-key" not in followed.headers and "x-api-key" not in preview.headers
    assert list(tmp_path.iterdir()) == []


# --- refused links -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("refusal", ["unauthorized", "forbidden"])
@pytest.mark.parametrize(
    ("kind", "endpoint", "save"),
    [
        ("text-to-voice", "preview", lambda run_id, folder: TextToVoiceResultOperator(
            task_id="save", run_id=run_id, destination=folder)),
        ("tts", "media", lambda run_id, folder: CambTextToSpeechResultOperator(
            task_id="save", run_id=run_id, destination=folder, output_type="FILE_URL")),
    ],
    ids=["preview", "speech FILE_URL"],
)  # fmt: skip
def test_a_refused_storage_link_says_it_expired_and_never_blames_the_key(
    camb_connection, tmp_path, kind, endpoint, save, refusal
):
    run_id = finished_run(camb_connection, kind)
    camb_connection.inject(refusal, endpoint=endpoint)
    with pytest.raises(CambLinkRefusedError, match="the link expired or was refused") as caught:
        save(run_id, tmp_path).execute(context())
    message = str(caught.value)
    assert "HTTP 401" in message if refusal == "unauthorized" else "HTTP 403" in message
    assert "The API key is never sent to storage hosts" in message and "Check the API key" not in message
    assert "token" not in message and camb_connection.api_key not in message
    assert camb_connection.request_count(endpoint) == 1  # a refused link is not asked again
    assert list(tmp_path.iterdir()) == []
