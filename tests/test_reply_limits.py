"""Replies are bounded in size and in time, in both transports; downloads in size and in stalls.

Each case is a hostile server on loopback. What is asserted is the outcome: the typed error, how much
reached the client, and that the server saw the client hang up before its reply was done. Durations
are never asserted (house rule): the trickle tests record theirs as the test property ``elapsed_s``
and in their failure messages, for a reader to compare with ``timeout`` (they end within it plus a
fraction of a second on the 2-core CI machine).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_camb.exceptions import CambConnectionError, CambReplyTooLargeError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.operators.text_to_voice import TextToVoiceResultOperator
from tests.hostile_server import HostileServer, Received, Reply

MIB = 1024 * 1024
STATUS = b'{"status": "PENDING", "run_id": null, "message": null, "exception_reason": null}'
TRANSPORTS = ["sync", "async"]


def use_api(monkeypatch: pytest.MonkeyPatch, server: HostileServer, **extra: Any) -> CambHook:
    """A hook whose API is ``server``: no retries, so one request per call."""
    connection = {"conn_type": "camb", "host": server.url, "password": "key-abc123", "extra": {"retries": 0, **extra}}
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_DEFAULT", json.dumps(connection))
    return CambHook()


def status(hook: CambHook, transport: str, task_id: str = "t1") -> Any:
    if transport == "sync":
        return hook.get_task_status("text-to-voice", task_id)
    return asyncio.run(hook.aget_task_status("text-to-voice", task_id))


def endless_json(request: Received, reply: Reply) -> None:
    """A status reply that never ends and has no length: the client must count what it reads."""
    reply.head(200, {"Content-Type": "application/json", "Connection": "close"})
    reply.write(b'{"status": "PENDING", "message": "')
    chunk = b" " * 65536
    for _ in range(300 * MIB // len(chunk)):  # 300 MB, unless the client hangs up first
        reply.write(chunk)


# --- size ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_json_reply_past_the_limit_is_refused_and_the_rest_is_never_read(
    monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    with HostileServer(endless_json) as server:
        hook = use_api(monkeypatch, server)
        with pytest.raises(CambReplyTooLargeError, match=r"passed 1048576 bytes.*max_reply_bytes"):
            status(hook, transport)
        assert server.client_gone.wait(10), "the client never hung up"
    assert len(server.received) == 1  # not retried: the same request would bring the same reply
    assert server.bytes_sent < 16 * MIB  # the limit plus what the sockets buffered, not 300 MB


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_reply_that_announces_too_many_bytes_is_refused_before_its_body(
    monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    def announced(request: Received, reply: Reply) -> None:
        reply.head(200, {"Content-Type": "application/json", "Content-Length": str(300 * MIB)})
        reply.trickle(b"{" * 1000, every=0.01)  # slow: the client must not wait for the body

    with HostileServer(announced) as server:
        with pytest.raises(CambReplyTooLargeError, match=f"announces {300 * MIB} bytes"):
            status(use_api(monkeypatch, server), transport)
        assert server.client_gone.wait(10)
    assert not server.finished.is_set()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_connection_extra_raises_the_limit(monkeypatch: pytest.MonkeyPatch, transport: str) -> None:
    big = json.dumps({"status": "PENDING", "message": "x" * (2 * MIB)}).encode()

    def reply_big(request: Received, reply: Reply) -> None:
        reply.head(200, {"Content-Type": "application/json", "Content-Length": str(len(big))})
        reply.write(big)

    with HostileServer(reply_big) as server:
        with pytest.raises(CambReplyTooLargeError):
            status(use_api(monkeypatch, server), transport)
        answer = status(use_api(monkeypatch, server, max_reply_bytes=4 * MIB), transport)
    assert answer.status == "PENDING" and len(answer.message) == 2 * MIB


MEMORY_PROBE = """
import asyncio, json, resource
from airflow_provider_camb.exceptions import CambReplyTooLargeError
from airflow_provider_camb.hooks.camb import CambHook

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

hook = CambHook()
hook.get_task_status("text-to-voice", "small")  # warm both transports up on a small reply
asyncio.run(hook.aget_task_status("text-to-voice", "small"))
peaks = [peak()]
for call in (lambda: hook.get_task_status("text-to-voice", "huge"),
             lambda: asyncio.run(hook.aget_task_status("text-to-voice", "huge"))):
    try:
        call()
    except CambReplyTooLargeError:
        pass
    peaks.append(peak())
print(json.dumps(peaks))
"""


def test_a_300_mb_reply_adds_under_20_mb_of_memory_in_both_transports(monkeypatch: pytest.MonkeyPatch) -> None:
    """The peak RSS of a fresh process, before and after a 300 MB status reply in each transport."""

    def script(request: Received, reply: Reply) -> None:
        if request.target.endswith("/small"):
            reply.head(200, {"Content-Type": "application/json", "Content-Length": str(len(STATUS))})
            reply.write(STATUS)
        else:
            endless_json(request, reply)

    with HostileServer(script) as server:
        connection = {"conn_type": "camb", "host": server.url, "password": "key", "extra": {"retries": 0}}
        env = {**os.environ, "AIRFLOW_CONN_CAMB_DEFAULT": json.dumps(connection)}
        result = subprocess.run(
            [sys.executable, "-c", MEMORY_PROBE], env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert server.client_gone.wait(10)
    before, after_sync, after_async = json.loads(result.stdout.strip().splitlines()[-1])
    growth = {"sync": after_sync - before, "async": after_async - after_sync}
    print(f"peak RSS growth: {growth}, sent {server.bytes_sent} bytes")
    assert max(growth.values()) < 20 * MIB and after_async - before < 20 * MIB, growth
    assert server.bytes_sent < 32 * MIB  # both replies were abandoned near the limit, not read to their end


# --- time ----------------------------------------------------------------------------------------


def trickling(head: bool) -> Callable[[Received, Reply], None]:
    """A whole, valid status reply, one byte every 0.2 s (about 17 s in all): only a deadline ends it early."""
    text = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(STATUS)

    def script(request: Received, reply: Reply) -> None:
        if head:
            reply.trickle(text + STATUS, every=0.2)
        else:
            reply.write(text)
            reply.trickle(STATUS, every=0.2)

    return script


@pytest.mark.parametrize(
    ("transport", "part"), [("sync", "body"), ("sync", "headers"), ("async", "body"), ("async", "headers")]
)
def test_a_reply_that_trickles_in_ends_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch, record_property: Callable[[str, object], None], transport: str, part: str
) -> None:
    with HostileServer(trickling(head=part == "headers")) as server:
        hook = use_api(monkeypatch, server, timeout=1)
        started = time.monotonic()
        with pytest.raises(CambConnectionError) as caught:
            status(hook, transport)
        elapsed = time.monotonic() - started
        record_property("elapsed_s", round(elapsed, 2))
        assert server.client_gone.wait(10), f"the client kept reading ({elapsed:.1f} s)"
    assert not server.finished.is_set(), f"the whole reply arrived; the call took {elapsed:.1f} s (timeout 1 s)"
    if transport == "sync":
        assert "within 1 s" in str(caught.value), str(caught.value)
    assert server.bytes_sent < len(STATUS) + 100


@pytest.fixture
def link_hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[CambHook]:
    """A hook on a local API (127.0.0.1), so links to 127.0.0.1 are allowed; timeout 1 s, no retries."""
    connection = {"conn_type": "camb", "host": "http://127.0.0.1:9", "password": "key", "extra": {"retries": 0}}
    connection["extra"]["timeout"] = 1
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_DEFAULT", json.dumps(connection))
    with CambHook() as hook:
        yield hook


def test_a_download_that_stalls_ends_after_the_bytes_that_came(
    link_hook: CambHook, record_property: Callable[[str, object], None]
) -> None:
    def stall(request: Received, reply: Reply) -> None:
        reply.head(200, {"Content-Type": "audio/wav", "Content-Length": "100000"})
        reply.write(b"R" * 1000)
        time.sleep(1.5)  # silence, longer than the timeout
        for _ in range(300):  # then probes, until one finds that the client has gone
            reply.write(b"R")
            time.sleep(0.1)

    with HostileServer(stall) as server:
        started = time.monotonic()
        with pytest.raises(CambConnectionError, match=r"failed after \d+ bytes \(no byte arrived for 1 s") as caught:
            link_hook.download_link(f"{server.url}/file.wav?token=bearer-secret", io.BytesIO())
        record_property("elapsed_s", round(time.monotonic() - started, 2))
        assert server.client_gone.wait(10)
    assert "bearer-secret" not in str(caught.value)
    assert "failed after 1000 bytes" in str(caught.value)  # every byte that came was counted, none after


@pytest.mark.parametrize("part", ["headers", "error body"])
def test_a_download_whose_headers_or_error_trickle_in_ends_at_the_deadline(link_hook: CambHook, part: str) -> None:
    def slow_head(request: Received, reply: Reply) -> None:
        if part == "headers":
            reply.trickle(b"HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nContent-Length: 4\r\n\r\nRIFF", every=0.2)
        else:
            reply.head(500, {"Content-Type": "text/plain", "Content-Length": "60"})
            reply.trickle(b"Internal error " * 4, every=0.2)

    with HostileServer(slow_head) as server:
        with pytest.raises(CambConnectionError, match=r"(headers|error reply) had not arrived within 1 s"):
            link_hook.download_link(f"{server.url}/file.wav", io.BytesIO())
        assert server.client_gone.wait(10)
    assert not server.finished.is_set()


# --- downloads: max_bytes ------------------------------------------------------------------------


def test_a_download_past_max_bytes_is_refused_without_reading_the_rest(link_hook: CambHook) -> None:
    def chunked_forever(request: Received, reply: Reply) -> None:
        reply.head(200, {"Content-Type": "audio/wav", "Transfer-Encoding": "chunked"})
        for _ in range(10_000):
            reply.write(b"10000\r\n" + b"R" * 0x10000 + b"\r\n")

    with HostileServer(chunked_forever) as server:
        with pytest.raises(CambReplyTooLargeError, match=r"passed 100000 bytes.*max_bytes"):
            link_hook.download_link(f"{server.url}/file.wav", io.BytesIO(), max_bytes=100_000)
        assert server.client_gone.wait(10)
    assert server.bytes_sent < 16 * MIB


def test_max_bytes_on_a_result_operator_refuses_big_previews_and_writes_nothing(
    camb_standin: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_DEFAULT", camb_standin.connection_json())
    run_id = CambHook().get_task_status("text-to-voice", camb_standin.add_task(status="SUCCESS")).run_id
    operator = TextToVoiceResultOperator(task_id="d", run_id=run_id, destination=str(tmp_path), max_bytes=1000)
    with pytest.raises(CambReplyTooLargeError, match="announces 44144 bytes, over the limit of 1000"):
        operator.execute({"ti": None})
    assert list(tmp_path.iterdir()) == []
    assert len(camb_standin.requests("preview")) == 1  # refused at the first preview's headers, not retried
