"""No key and no link beyond its host in any log line, error message or trigger event.

- Every download the provider makes runs at DEBUG, with the HTTP libraries' own loggers on; no record
  and no printed line holds a link's path or token, or the API key.
- A reply that repeats the key (a hostile or careless server) loses it before it becomes an error, a
  log line or a trigger event: Airflow stores events in ``task_instance.next_kwargs``, where its
  secrets masker does not reach.
- A key with a control character or a character outside Latin-1 (a bad paste) is refused when the
  connection is read, without showing the key or its repr, and nothing is sent.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_camb.exceptions import CambAuthError, CambError, CambInputError, CambValidationError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.operators.dubbing import CambDubbingResultOperator
from airflow_provider_camb.operators.text_to_sound import CambTextToSoundResultOperator
from airflow_provider_camb.operators.text_to_speech import CambTextToSpeechResultOperator
from airflow_provider_camb.operators.text_to_voice import TextToVoiceResultOperator
from airflow_provider_camb.triggers.camb_task import CambTaskTrigger
from tests.hostile_server import HostileServer, Received, Reply, json_reply

KEY = "key-Zq81mWv0xT4"


class _Ti:
    def xcom_push(self, key: str, value: Any) -> None: ...


# --- logs ----------------------------------------------------------------------------------------


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record at DEBUG, the HTTP libraries' loggers included (read ``.records`` at the end)."""
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "aiohttp"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def test_no_download_logs_a_link_or_the_key_at_debug(
    camb_standin: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    debug_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_DEFAULT", camb_standin.connection_json())
    hook = CambHook()

    def run_of(kind: str, **request: Any) -> int:
        run_id = hook.get_task_status(kind, camb_standin.add_task(kind=kind, status="SUCCESS", request=request)).run_id
        assert run_id is not None
        return run_id

    downloads = [
        TextToVoiceResultOperator(task_id="previews", run_id=run_of("text-to-voice"), destination=str(tmp_path / "a")),
        CambTextToSpeechResultOperator(task_id="raw", run_id=run_of("tts"), destination=str(tmp_path / "b")),
        CambTextToSpeechResultOperator(
            task_id="link", run_id=run_of("tts"), destination=str(tmp_path / "c"), output_type="FILE_URL"
        ),
        CambTextToSoundResultOperator(
            task_id="sound", run_id=run_of("text-to-sound"), destination=str(tmp_path / "d"), output_type="FILE_URL"
        ),
        CambDubbingResultOperator(
            task_id="dub", run_id=run_of("dub", target_languages=["fr-fr", "de-de"]), destination=str(tmp_path / "e")
        ),
    ]
    for operator in downloads:
        operator.execute({"ti": _Ti()})
    links = hook.get_text_to_voice_result(run_of("text-to-voice"))
    hook.download_link(links[0], tmp_path / "one.wav", what="a preview")  # the path form too
    served = camb_standin.requests("preview") + camb_standin.requests("media")
    assert len(served) == 2 + 1 + 1 + 2 * 2 + 1  # previews, FILE_URL speech and sound, dubbed audio and video

    tokens = {request.query["token"] for request in served}
    debug_records = debug_logs.records
    printed = capfd.readouterr()
    texts = [record.getMessage() for record in debug_records] + (printed.out + printed.err).splitlines()
    leaks = [text for text in texts if KEY in text or camb_standin.api_key in text or any(t in text for t in tokens)]
    assert leaks == []
    assert not any("/previews/" in text or "/media/" in text for text in texts)
    library = [r for r in debug_records if r.name.startswith("urllib3") and r.levelno == logging.DEBUG]
    assert any("/…" in r.getMessage() for r in library)  # urllib3 did log each request line, cut to its host


# --- replies that repeat the key -----------------------------------------------------------------


def use_api(monkeypatch: pytest.MonkeyPatch, server: HostileServer, password: str = KEY) -> None:
    connection = {"conn_type": "camb", "host": server.url, "password": password, "extra": {"retries": 0}}
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_DEFAULT", json.dumps(connection))


def echo_key(status: int, body: object) -> Any:
    return json_reply(json.dumps(body).encode(), status)


#: The key as a reply may spell it: plainly, and JSON-escaped so that only parsing reveals it.
ESCAPED = "".join(f"\\u{ord(char):04x}" for char in KEY)


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {"detail": f"Invalid API key {KEY}"}, CambAuthError),
        (401, f"Invalid API key {KEY} " * 30, CambAuthError),  # a long text, cut to 200 characters
        (422, {"detail": [{"loc": ["body", "text"], "msg": f"bad request from {KEY}"}]}, CambValidationError),
        (500, {"detail": {"echo": f"headers: x-api-key={KEY}"}}, CambError),
    ],
)
def test_an_error_reply_that_repeats_the_key_loses_it(
    monkeypatch: pytest.MonkeyPatch, status: int, body: object, error: type[CambError]
) -> None:
    with HostileServer(echo_key(status, body)) as server:
        use_api(monkeypatch, server)
        with pytest.raises(error) as caught:
            CambHook().get_task_status("text-to-voice", "t1")
    assert KEY not in str(caught.value) and "***" in str(caught.value)
    assert KEY not in repr(getattr(caught.value, "detail", ""))


def test_a_json_escaped_key_in_a_reply_is_found_and_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    body = ('{"detail": "Invalid API key ' + ESCAPED + '"}').encode()
    with HostileServer(json_reply(body, 401)) as server:
        use_api(monkeypatch, server)
        with pytest.raises(CambAuthError) as caught:
            CambHook().get_task_status("text-to-voice", "t1")
    assert KEY not in str(caught.value) and "***" in str(caught.value)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32-le"])
def test_a_status_reply_that_spells_the_key_in_any_json_encoding_loses_it(
    monkeypatch: pytest.MonkeyPatch, encoding: str
) -> None:
    text = '{"status": "ERROR", "message": "for ' + KEY + '", "exception_reason": "' + ESCAPED + '"}'
    with HostileServer(json_reply(text.encode(encoding))) as server:
        use_api(monkeypatch, server)
        status = CambHook().get_task_status("text-to-voice", "t1")
    assert (status.message, status.exception_reason) == ("for ***", "***")


def first_event(trigger: CambTaskTrigger) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async with asyncio.timeout(20):
            async for event in trigger.run():
                return dict(event.payload)
        raise AssertionError("no event")

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, {"detail": f"Invalid API key {KEY}"}),
        (200, {"status": "ERROR", "run_id": None, "exception_reason": f"BAD_KEY {KEY}", "message": f"key={KEY}"}),
        (200, {"status": "ERROR", "message": {"nested": [f"x-api-key: {KEY}"], KEY: "as a key"}}),
    ],
)
def test_no_trigger_event_holds_the_key(monkeypatch: pytest.MonkeyPatch, status: int, body: object) -> None:
    with HostileServer(echo_key(status, body)) as server:
        use_api(monkeypatch, server)
        event = first_event(
            CambTaskTrigger("t1", kind="text-to-voice", poll_interval=0.1, wait_before_first_poll=False, timeout=30)
        )
    stored = json.dumps(event)  # what Airflow writes to task_instance.next_kwargs
    assert event["outcome"] == "error" or event["status"] == "ERROR"
    assert KEY not in stored and "***" in stored


# --- keys that cannot be sent --------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["key-abc\ndef", "key-abc\rdef", "key\x00abc", "key\tabc", "key\x7fabc", "key\x85abc", "ключ-abc", "key🙂"]
)
def test_a_key_that_cannot_be_a_header_is_refused_without_showing_it(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    with HostileServer(echo_key(200, {"status": "PENDING"})) as server:
        use_api(monkeypatch, server, password=key)
        with pytest.raises(CambInputError, match="control character or a character outside Latin-1") as caught:
            CambHook().get_task_status("text-to-voice", "t1")
        event = first_event(
            CambTaskTrigger("t1", kind="text-to-voice", poll_interval=0.1, wait_before_first_poll=False, timeout=30)
        )
        for text in (str(caught.value), json.dumps(event)):
            assert key not in text and repr(key) not in text and repr(key)[1:-1] not in text
            assert "abc" not in text  # not even a part of it
        assert server.received == []  # nothing was sent


def test_a_key_pasted_with_a_trailing_newline_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    with HostileServer(echo_key(200, {"status": "PENDING"})) as server:
        use_api(monkeypatch, server, password=KEY + "\n")
        assert CambHook().get_task_status("text-to-voice", "t1").status == "PENDING"
        (received,) = server.received
    assert received.headers["x-api-key"] == KEY


def test_a_download_error_from_a_storage_host_loses_the_key_too(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(request: Received, reply: Reply) -> None:
        body = f"bad signature; expected {KEY}".encode()
        reply.head(500, {"Content-Length": str(len(body))})
        reply.write(body)

    with HostileServer(refuse) as storage:
        use_api(monkeypatch, storage)
        with pytest.raises(CambError) as caught:
            CambHook().download_link(f"{storage.url}/file.wav?token=t", io.BytesIO())
    assert KEY not in str(caught.value) and "***" in str(caught.value)
