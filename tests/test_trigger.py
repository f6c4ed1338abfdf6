"""CambTaskTrigger against the stand-in, over real HTTP on loopback (the 0.1.0 TextToVoiceTrigger: test_deprecated)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_camb.events import FinishedEvent
from airflow_provider_camb.hooks._shared_session import open_sessions
from airflow_provider_camb.kinds import TEXT_TO_VOICE
from airflow_provider_camb.triggers.camb_task import CambTaskTrigger
from tests.shared import logged, run_id_of, text_to_voice_trigger, trigger_events


async def until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """In the loop: wait until ``condition()`` holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.02)


def run_trigger(trigger: CambTaskTrigger, limit: float = 20) -> dict[str, Any]:
    """Run the trigger to its end; it must yield exactly one event."""
    events = asyncio.run(trigger_events(trigger, limit))
    assert len(events) == 1, events
    return events[0]


def test_serialize_round_trip_rebuilds_an_equal_trigger_without_secrets(camb_connection):
    trigger = CambTaskTrigger("task-1", "camb_default", poll_interval=7, deadline=1234.5, kind=TEXT_TO_VOICE.name)
    classpath, kwargs = trigger.serialize()
    rebuilt = CambTaskTrigger(**kwargs)
    assert classpath == "airflow_provider_camb.triggers.camb_task.CambTaskTrigger"
    assert rebuilt.serialize() == (classpath, kwargs)
    stored = json.dumps(kwargs)
    assert camb_connection.api_key not in stored
    assert "x-api-key" not in stored.lower() and "http" not in stored


def test_pending_then_success_yields_the_run_id(camb_connection):
    camb_connection.configure(pending_from_first_status=True)  # the first poll always sees PENDING
    task_id = camb_connection.add_task(pending_seconds=0.5, outcome="SUCCESS")
    event = run_trigger(text_to_voice_trigger(task_id))
    assert event["status"] == "SUCCESS"
    assert event["run_id"] == run_id_of(task_id)
    assert event["task_id"] == task_id
    assert event["polls"] >= 2  # at least one PENDING, then SUCCESS
    assert event["outcome"] == "finished" and event["kind"] == "text-to-voice"
    assert set(event) == set(FinishedEvent.__annotations__)


@pytest.mark.parametrize("outcome", ["ERROR", "TIMEOUT", "PAYMENT_REQUIRED"])
def test_each_terminal_failure_status_ends_the_wait(camb_connection, outcome):
    task_id = camb_connection.add_task(pending_seconds=0.3, outcome=outcome, exception_reason="PROCESSING_ERROR")
    event = run_trigger(text_to_voice_trigger(task_id))
    assert event["status"] == outcome
    assert event["run_id"] is None
    assert event["exception_reason"] == "PROCESSING_ERROR"


def test_server_errors_and_rate_limit_mid_wait_still_end_in_success(camb_connection, capfd):
    task_id = camb_connection.add_task(pending_seconds=1.0)
    camb_connection.inject("http_503", endpoint="status", times=2)
    camb_connection.inject("rate_limit", endpoint="status", times=1, retry_after=1)
    camb_connection.inject("http_500", endpoint="status", times=1)
    event = run_trigger(text_to_voice_trigger(task_id))
    assert event["status"] == "SUCCESS"
    polls = camb_connection.requests("status")
    assert [r.status for r in polls[:5]] == [503, 503, 429, 500, 200]
    assert polls[3].time - polls[2].time >= 0.75  # the stand-in's clock: the 429's Retry-After (1 s), give or take
    # Each retry is logged once with its cause (Airflow 2 may echo a record through several handlers).
    retries = set(re.findall(r"Attempt (\d+) failed: .*?\(HTTP (\d+)", logged(capfd)))
    assert retries == {("1", "503"), ("2", "503"), ("3", "429"), ("4", "500")}


def test_unauthorized_ends_the_wait_with_an_error_naming_the_cause(camb_connection):
    task_id = camb_connection.add_task(pending_seconds=5)
    camb_connection.inject("unauthorized", endpoint="status", times=1)
    event = run_trigger(text_to_voice_trigger(task_id))
    assert event["outcome"] == "error"
    assert event["error_type"] == "CambAuthError"
    assert "API key" in event["message"] and camb_connection.api_key not in event["message"]
    assert camb_connection.request_count("status") == 1  # permanent: no retries burned


def test_unknown_task_ends_with_an_error_naming_the_task(camb_connection):
    event = run_trigger(text_to_voice_trigger("no-such-task"))
    assert event["outcome"] == "error"
    assert event["error_type"] == "CambNotFoundError"
    assert "no-such-task" in event["message"]


def test_deadline_reached_ends_in_timeout(camb_connection):
    task_id = camb_connection.add_task(pending_seconds=60)
    event = run_trigger(text_to_voice_trigger(task_id, deadline=time.time() + 1.0))
    assert event["outcome"] == "deadline"
    assert "PENDING" in event["message"]
    assert event["polls"] >= 1


def test_deadline_during_an_outage_ends_in_timeout_naming_the_last_failure(camb_connection):
    task_id = camb_connection.add_task(pending_seconds=60)
    camb_connection.inject("http_503", endpoint="status", times=1000)
    event = run_trigger(text_to_voice_trigger(task_id, deadline=time.time() + 1.5))
    assert event["outcome"] == "deadline"
    assert "HTTP 503" in event["message"]


def test_unknown_status_does_not_end_the_wait_and_warns_once(camb_connection, capfd):
    task_id = camb_connection.add_task(pending_seconds=1.5)
    camb_connection.inject("unknown_status", endpoint="status", times=3, status="QUEUED_FOR_GPU")
    event = run_trigger(text_to_voice_trigger(task_id))
    assert event["status"] == "SUCCESS"
    warnings = [line for line in logged(capfd).splitlines() if "QUEUED_FOR_GPU" in line]
    assert len(warnings) == 1


def test_cancellation_closes_the_shared_client(camb_connection):
    task_id = camb_connection.add_task(pending_seconds=60)

    async def cancel_midway() -> tuple[int, int]:
        task = asyncio.ensure_future(trigger_events(text_to_voice_trigger(task_id), 30))
        await until(lambda: camb_connection.request_count("status") >= 2, "two polls")
        open_while_waiting = open_sessions()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return open_while_waiting, open_sessions()

    while_waiting, after = asyncio.run(cancel_midway())
    assert (while_waiting, after) == (1, 0)


def test_many_triggers_in_one_loop_share_one_session(camb_connection):
    # Each task answers PENDING to its first ten reads (2 s of polls), however slowly the waits start
    # on a loaded machine: no wait ends, releasing the session, before every wait has polled once.
    camb_connection.configure(pending_reads=10)
    task_ids = [camb_connection.add_task() for _ in range(20)]

    def every_wait_polled() -> bool:
        return {r.path_id for r in camb_connection.requests("status")} == set(task_ids)

    async def wait_all() -> tuple[list[list[dict[str, Any]]], int]:
        runs = [asyncio.ensure_future(trigger_events(text_to_voice_trigger(t), 20)) for t in task_ids]
        await until(every_wait_polled, "a poll of every wait")
        assert not any(run.done() for run in runs)
        sessions = open_sessions()
        return list(await asyncio.gather(*runs)), sessions

    results, sessions = asyncio.run(wait_all())
    assert sessions == 1
    assert [events[0]["status"] for events in results] == ["SUCCESS"] * 20
    assert open_sessions() == 0


def test_wait_before_first_poll_sends_nothing_while_another_wait_polls_to_its_end(camb_connection):
    camb_connection.configure(pending_from_first_status=True)
    waiting, busy = camb_connection.add_task(status="SUCCESS"), camb_connection.add_task(pending_seconds=0.3)

    async def both() -> list[dict[str, Any]]:
        first_poll_later = asyncio.ensure_future(
            trigger_events(text_to_voice_trigger(waiting, poll_interval=60, wait_before_first_poll=True), 30)
        )
        events = await trigger_events(
            text_to_voice_trigger(busy, poll_interval=0.05), 30
        )  # polls every 50 ms until SUCCESS
        first_poll_later.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first_poll_later
        return events

    (event,) = asyncio.run(both())
    assert event["status"] == "SUCCESS" and event["polls"] >= 2
    assert {r.path_id for r in camb_connection.requests("status")} == {busy}  # not one poll of the other


def test_wait_before_first_poll_then_polls_once_for_a_finished_task(camb_connection):
    task_id = camb_connection.add_task(status="SUCCESS")
    event = run_trigger(text_to_voice_trigger(task_id, poll_interval=0.5, wait_before_first_poll=True))
    assert event["status"] == "SUCCESS" and event["polls"] == 1
    assert camb_connection.request_count("status") == 1


def test_a_rebuilt_trigger_resumes_the_same_wait(camb_connection):
    task_id = camb_connection.add_task(pending_seconds=1.5)
    deadline = time.time() + 30
    first = text_to_voice_trigger(task_id, deadline=deadline)

    async def run_briefly() -> None:
        task = asyncio.ensure_future(trigger_events(first, 30))
        await until(lambda: camb_connection.request_count("status") >= 1, "the first poll")
        task.cancel()  # a triggerer dies mid-wait
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run_briefly())
    polls_before_restart = camb_connection.request_count("status")
    assert polls_before_restart >= 1
    _, kwargs = first.serialize()
    event = run_trigger(CambTaskTrigger(**json.loads(json.dumps(kwargs))))
    assert event["status"] == "SUCCESS" and event["task_id"] == task_id
    assert camb_connection.request_count("status") > polls_before_restart
