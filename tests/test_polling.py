"""The poll core on its own: one CAMB task to its outcome, and many tasks in one coroutine (the batch case)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from airflow_provider_camb.hooks._shared_session import open_sessions
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.kinds import TEXT_TO_VOICE, TTS
from airflow_provider_camb.polling import poll_task, poll_tasks

FAST = 0.1  # poll interval, seconds
log = logging.getLogger("tests.polling")


def test_one_task_polls_to_its_outcome_through_a_plain_logger(camb_connection, caplog):
    task_id = camb_connection.add_task(pending_seconds=0.3, kind="tts")
    caplog.set_level(logging.INFO, logger=log.name)
    event = asyncio.run(
        poll_task(
            CambHook(), TTS, task_id, interval=FAST, log=log, wait_before_first_poll=False, deadline=time.time() + 30
        )
    )
    assert event["outcome"] == "finished" and event["status"] == "SUCCESS" and event["kind"] == "tts"
    assert event["polls"] == camb_connection.request_count("status") >= 1
    assert f"CAMB task {task_id} ended with SUCCESS" in caplog.text
    assert open_sessions() == 0


def test_many_tasks_in_one_coroutine_each_reach_their_own_outcome(camb_connection):
    succeeding = [camb_connection.add_task(pending_seconds=0.2 + i * 0.02, kind="tts") for i in range(40)]
    failing = camb_connection.add_task(pending_seconds=0.2, outcome="ERROR", kind="tts")
    stuck = camb_connection.add_task(pending_seconds=3600, kind="tts")
    ids = [*succeeding, failing, stuck, "no-such-task"]

    async def wait_all() -> list[dict]:
        batch = poll_tasks(CambHook(), TTS, ids, interval=FAST, log=log, deadline=time.time() + 3)
        return [dict(event) async for event in batch]

    outcomes = {event["task_id"]: event for event in asyncio.run(wait_all())}
    assert sorted(outcomes) == sorted(ids)  # one outcome per task, none twice
    assert {outcomes[task_id]["status"] for task_id in succeeding} == {"SUCCESS"}
    assert outcomes[failing]["outcome"] == "finished" and outcomes[failing]["status"] == "ERROR"
    assert outcomes[stuck]["outcome"] == "deadline" and outcomes[stuck]["last_status"] == "PENDING"
    assert outcomes["no-such-task"]["outcome"] == "error"
    assert outcomes["no-such-task"]["error_type"] == "CambNotFoundError"
    status_reads = sum(event["polls"] for event in outcomes.values())
    assert status_reads + 1 == camb_connection.request_count("status")  # + the 404, which read no status
    assert open_sessions() == 0


def test_closing_a_batch_early_cancels_the_polls_still_running(camb_connection):
    quick = camb_connection.add_task(pending_seconds=0.1, kind="tts")
    slow = [camb_connection.add_task(pending_seconds=3600, kind="tts") for _ in range(5)]

    async def first_only() -> tuple[dict, int]:
        batch = poll_tasks(CambHook(), TTS, [quick, *slow], interval=FAST, log=log, wait_before_first_poll=False)
        first = dict(await anext(batch))
        await batch.aclose()
        return first, len([task for task in asyncio.all_tasks() if task is not asyncio.current_task()])

    first, still_running = asyncio.run(first_only())
    assert first["task_id"] == quick and first["status"] == "SUCCESS"
    assert still_running == 0
    assert open_sessions() == 0


@pytest.mark.parametrize("deadline_in", [0.0, -5.0])
def test_a_deadline_already_past_ends_without_a_request(camb_connection, deadline_in):
    task_id = camb_connection.add_task(pending_seconds=60)
    event = asyncio.run(
        poll_task(CambHook(), TEXT_TO_VOICE, task_id, interval=FAST, log=log, deadline=time.time() + deadline_in)
    )
    assert event["outcome"] == "deadline" and "(no status read)" in event["message"]
    assert camb_connection.request_count("status") == 0
