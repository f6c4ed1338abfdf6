"""CambHook against the stand-in over loopback: every method, every error class, the retry policy, the key."""

from __future__ import annotations

import asyncio
import io
import json
import time
import wave

import pytest

from airflow_provider_camb.api import CambTaskStatus, classify_reply, status_request
from airflow_provider_camb.exceptions import (
    CambApiError,
    CambAuthError,
    CambConnectionError,
    CambInputError,
    CambNotFoundError,
    CambPaymentRequiredError,
    CambRateLimitError,
    CambResponseError,
    CambServerError,
    CambValidationError,
)
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.kinds import TEXT_TO_VOICE, kind_of
from tests.shared import DESCRIPTION, FIRST_VOICE_ID, TEXT


@pytest.fixture
def hook(camb_connection):
    """A hook on ``camb_connection`` (the stand-in, fast retries)."""
    with CambHook() as hook:
        yield hook


def use_connection(monkeypatch, **fields):
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_TEST", json.dumps({"conn_type": "camb", **fields}))
    return CambHook("camb_test")


# --- every method --------------------------------------------------------------------------------


def test_create_then_status_then_result_then_download(hook, camb_standin, tmp_path):
    task_id = hook.create_text_to_voice(TEXT, DESCRIPTION, project_name="demo")
    assert camb_standin.requests("create")[0].json["voice_description"] == DESCRIPTION
    assert hook.get_task_status("text-to-voice", task_id).status == "PENDING"
    deadline = time.monotonic() + 10
    while not (status := hook.get_task_status("text-to-voice", task_id)).is_terminal:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert status.status == "SUCCESS" and isinstance(status.run_id, int)
    previews = hook.get_text_to_voice_result(status.run_id)
    assert len(previews) == 2
    target = tmp_path / "voice.wav"
    downloaded = hook.download_link(previews[0], target, what="a preview")
    assert downloaded.bytes == target.stat().st_size > 44
    assert downloaded.content_type == "audio/wav"
    with wave.open(str(target)) as audio:
        assert audio.getnframes() / audio.getframerate() == pytest.approx(1.0, abs=0.05)


def test_download_to_a_file_object(hook, camb_standin):
    run_id = hook.get_task_status("text-to-voice", camb_standin.add_task(status="SUCCESS")).run_id
    buffer = io.BytesIO()
    result = hook.download_link(hook.get_text_to_voice_result(run_id)[1], buffer, what="a preview")
    assert result.bytes == len(buffer.getvalue())
    assert buffer.getvalue()[:4] == b"RIFF"


def test_async_status_and_result(hook, camb_standin):
    task_id = camb_standin.add_task(status="SUCCESS")

    async def read() -> tuple[CambTaskStatus, list[str]]:
        status = await hook.aget_task_status("text-to-voice", task_id)
        return status, await hook.aget_text_to_voice_result(status.run_id)

    status, previews = asyncio.run(read())
    assert status.status == "SUCCESS"
    assert len(previews) == 2
    assert previews == hook.get_text_to_voice_result(status.run_id)


def test_create_custom_voice_uploads_the_file(hook, camb_standin, tmp_path):
    run_id = hook.get_task_status("text-to-voice", camb_standin.add_task(status="SUCCESS")).run_id
    path = tmp_path / "chosen.wav"
    preview = hook.download_link(hook.get_text_to_voice_result(run_id)[0], path, what="a preview")
    voice_id = hook.create_custom_voice(path, "Narrator", 2, run_id=run_id, age=40)
    assert voice_id == FIRST_VOICE_ID
    received = camb_standin.requests("custom_voice")[0]
    assert received.json["file_sha256"] == preview.sha256
    assert received.query["run_id"] == str(run_id)


def test_list_source_languages(hook):
    languages = hook.list_source_languages()
    assert [language["short_name"] for language in languages] == ["en-us", "en-gb", "de-de", "es-es", "fr-fr"]
    assert languages[0] == {"id": 1, "language": "English (United States)", "short_name": "en-us"}


@pytest.mark.parametrize("kind", ["transcribe", "audio-separation"])
def test_the_status_of_transcription_and_audio_separation_is_read_like_any_kind(hook, camb_standin, kind):
    done = camb_standin.add_task(kind=kind, status="SUCCESS")  # the stand-in's first run: 1000
    pending = camb_standin.add_task(kind=kind, status="PENDING")
    camb_kind = kind_of(kind)
    assert hook.get_task_status(kind, pending) == CambTaskStatus(pending, "PENDING", kind=camb_kind)
    assert hook.get_task_status(kind, done) == CambTaskStatus(done, "SUCCESS", run_id=1000, kind=camb_kind)
    assert asyncio.run(hook.aget_task_status(kind, done)) == CambTaskStatus(
        done, "SUCCESS", run_id=1000, kind=camb_kind
    )
    assert [r.path for r in camb_standin.requests("status")] == [
        f"/{kind}/{pending}",
        f"/{kind}/{done}",
        f"/{kind}/{done}",
    ]


# --- errors --------------------------------------------------------------------------------------


def test_wrong_key_is_an_auth_error_that_never_shows_the_key(camb_standin, monkeypatch):
    hook = use_connection(monkeypatch, host=camb_standin.base_url, password="wrong-key-123456")
    with pytest.raises(CambAuthError) as error:
        hook.get_task_status("text-to-voice", "abc")
    assert "wrong-key-123456" not in str(error.value)
    assert "camb_test" in str(error.value) and "API key" in str(error.value)


def test_unknown_task_is_not_found_and_names_it(hook):
    with pytest.raises(CambNotFoundError, match="no-such-task"):
        hook.get_task_status("text-to-voice", "no-such-task")


def test_validation_error_carries_the_server_detail(hook, camb_standin):
    with pytest.raises(CambValidationError) as error:
        hook.create_text_to_voice(TEXT, "too short", check_description=False)
    assert "voice_description" in str(error.value)
    assert isinstance(error.value.detail, list)


def test_payment_required_reply_is_its_own_error():
    with pytest.raises(CambPaymentRequiredError, match="Add credits"):
        classify_reply(status_request(TEXT_TO_VOICE, "t"), 402, {}, b'{"detail": "no credits"}', "camb_default")


def test_other_client_errors_are_permanent_api_errors():
    with pytest.raises(CambApiError, match="HTTP 418"):
        classify_reply(status_request(TEXT_TO_VOICE, "t"), 418, {}, b"teapot", "camb_default")


def test_retries_stop_at_the_limit_with_a_clear_error(hook, camb_standin):
    task_id = camb_standin.add_task()
    camb_standin.inject("http_503", endpoint="status", times=10)
    with pytest.raises(CambServerError, match="HTTP 503"):
        hook.get_task_status("text-to-voice", task_id)
    assert camb_standin.request_count("status") == 3  # 1 + retries


@pytest.mark.parametrize(
    ("fault", "error"),
    [("malformed_json", CambResponseError), ("html_error", CambServerError), ("drop", CambConnectionError)],
)
def test_each_passing_fault_is_retried_then_succeeds(hook, camb_standin, fault, error):
    task_id = camb_standin.add_task()
    camb_standin.inject(fault, endpoint="status", times=2)
    assert hook.get_task_status("text-to-voice", task_id).status == "PENDING"
    assert camb_standin.request_count("status") == 3
    camb_standin.inject(fault, endpoint="status", times=3)
    with pytest.raises(error):
        hook.get_task_status("text-to-voice", task_id)


def test_a_503_then_200_succeeds(hook, camb_standin):
    task_id = camb_standin.add_task(status="SUCCESS")
    camb_standin.inject("http_503", endpoint="status", times=1)
    assert hook.get_task_status("text-to-voice", task_id).status == "SUCCESS"
    assert camb_standin.request_count("status") == 2


def test_a_429_waits_its_retry_after(hook, camb_standin):
    task_id = camb_standin.add_task(status="SUCCESS")
    camb_standin.inject("rate_limit", endpoint="status", times=1, retry_after=1)
    assert hook.get_task_status("text-to-voice", task_id).status == "SUCCESS"
    refused, answered = camb_standin.requests("status")
    assert (refused.status, answered.status) == (429, 200)
    assert answered.time - refused.time >= 0.75  # the stand-in's clock: the Retry-After of 1 s, give or take


def test_a_429_with_an_http_date_is_understood(hook, camb_standin):
    camb_standin.inject("rate_limit", endpoint="status", times=5, retry_after=0, date_form=True)
    with pytest.raises(CambRateLimitError) as error:
        hook.get_task_status("text-to-voice", camb_standin.add_task())
    assert error.value.retry_after is not None and 0 <= error.value.retry_after <= 1  # a date rounded up to 1 s


def test_a_create_that_reached_the_server_is_never_sent_twice(hook, camb_standin):
    camb_standin.inject("http_503", endpoint="create", times=1)
    with pytest.raises(CambServerError):
        hook.create_text_to_voice(TEXT, DESCRIPTION)
    camb_standin.inject("drop", endpoint="create", times=1)
    with pytest.raises(CambConnectionError):
        hook.create_text_to_voice(TEXT, DESCRIPTION)
    assert camb_standin.request_count("create") == 2  # one each, no repeat


def test_a_rate_limited_create_is_retried(hook, camb_standin):
    camb_standin.inject("rate_limit", endpoint="create", times=1, retry_after=0)
    task_id = hook.create_text_to_voice(TEXT, DESCRIPTION)
    assert [r.status for r in camb_standin.requests("create")] == [429, 200]
    assert hook.get_task_status("text-to-voice", task_id).status == "PENDING"  # the one task CAMB made


def test_a_refused_create_is_retried_because_it_never_left(camb_standin, monkeypatch):
    extra = {"retries": 6, "backoff": 0.2, "backoff_max": 0.3}
    hook = use_connection(monkeypatch, host=camb_standin.base_url, password=camb_standin.api_key, extra=extra)
    camb_standin.outage(0.5)
    task_id = hook.create_text_to_voice(TEXT, DESCRIPTION)  # refused attempts, then one that lands
    assert camb_standin.request_count("create") == 1
    assert hook.get_task_status("text-to-voice", task_id).status == "PENDING"  # the one task CAMB made


# --- the key and bad input -------------------------------------------------------------------------


def test_the_key_never_reaches_the_preview_host_nor_the_logs(hook, camb_standin, tmp_path, capfd):
    run_id = hook.get_task_status("text-to-voice", camb_standin.add_task(status="SUCCESS")).run_id
    for index, url in enumerate(hook.get_text_to_voice_result(run_id)):
        hook.download_link(url, tmp_path / f"{index}.wav", what="a preview")
    camb_standin.inject("http_503", endpoint="status", times=1)
    hook.get_task_status("text-to-voice", camb_standin.add_task())  # a retry is logged too
    out, err = capfd.readouterr()
    logs = out + err
    assert "Retrying" in logs
    previews = camb_standin.requests("preview")
    assert len(previews) == 2
    for request in previews:
        assert "x-api-key" not in {name.lower() for name in request.headers}
        assert camb_standin.api_key not in json.dumps(request.headers)
    assert all(r.headers.get("x-api-key") == camb_standin.api_key for r in camb_standin.requests("status"))
    assert camb_standin.api_key not in logs
    assert "token=" not in logs  # preview links can be bearer links: only hosts are logged
    assert camb_standin.api_key not in repr(hook) + repr(hook.settings)


@pytest.mark.parametrize("task_id", ["../x", "..", "a/../b", "x y", "ü?#", "%2F"])
def test_ids_are_encoded_and_reach_the_server_exactly(hook, camb_standin, task_id):
    with pytest.raises(CambNotFoundError):
        hook.get_task_status("text-to-voice", task_id)
    received = camb_standin.requests("status")
    assert [r.path_id for r in received] == [task_id]
    assert received[0].path.startswith("/text-to-voice/")


def test_the_same_ids_are_encoded_on_the_async_path(hook, camb_standin):
    ids = ["../x", "..", "ü?#"]

    async def read_all() -> None:
        for task_id in ids:
            with pytest.raises(CambNotFoundError):
                await hook.aget_task_status("text-to-voice", task_id)

    asyncio.run(read_all())
    assert [r.path_id for r in camb_standin.requests("status")] == ids


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"host": "http://camb.example.com", "password": "k"}, "plain http"),
        ({"host": "ftp://camb.example.com", "password": "k"}, "not an http"),
        ({"password": ""}, "no API key"),
        ({"password": "   "}, "no API key"),
        ({"password": "k", "extra": {"timeout": "soon"}}, "timeout"),
    ],
)
def test_bad_connections_are_refused_before_any_request(camb_standin, monkeypatch, fields, message):
    hook = use_connection(monkeypatch, **fields)
    with pytest.raises(CambInputError, match=message):
        hook.get_task_status("text-to-voice", "abc")
    assert camb_standin.request_count() == 0


@pytest.mark.parametrize("task_id", ["", "   ", None, 42])
def test_bad_task_ids_are_refused_before_any_request(hook, camb_standin, task_id):
    with pytest.raises(CambInputError, match="task id"):
        hook.get_task_status("text-to-voice", task_id)
    assert camb_standin.request_count() == 0


@pytest.mark.parametrize("run_id", ["abc", "1.5", -3, True, None, "１２"])
def test_non_integer_run_ids_are_refused_clearly(hook, camb_standin, run_id):
    with pytest.raises(CambInputError, match="whole number"):
        hook.get_text_to_voice_result(run_id)
    assert camb_standin.request_count() == 0


def test_base_url_from_host_and_port(monkeypatch):
    assert use_connection(monkeypatch, password="k").settings.base_url == "https://client.camb.ai/apis"
    hook = use_connection(monkeypatch, host="127.0.0.1", port=8765, password="k")
    assert hook.settings.base_url == "https://127.0.0.1:8765"
    hook = use_connection(monkeypatch, host="http://localhost:9000/apis/", password="k")
    assert hook.settings.base_url == "http://localhost:9000/apis"
