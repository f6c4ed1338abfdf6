"""The poll core: wait for one CAMB task, of any kind, until its outcome; many of them in one coroutine.

``poll_task`` polls ``GET /{kind}/{task_id}`` on a fixed grid with a random phase, through the key's
shared rate limiter (``CambHook.aget_task_status``), until a terminal status, the deadline, or an error
that retrying cannot fix, and returns the outcome as an event of ``airflow_provider_camb.events``.
``CambTaskTrigger`` is a thin wrapper over it; ``poll_tasks`` runs many polls in one coroutine, for a
trigger that waits on many CAMB tasks.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator, Iterable
from typing import Protocol

from airflow.providers.common.compat.sdk import AirflowNotFoundException

from airflow_provider_camb import events
from airflow_provider_camb.api import CambTaskStatus
from airflow_provider_camb.events import WaitEvent
from airflow_provider_camb.exceptions import CambError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.kinds import CambKind

#: Polls start on slots of the loop clock this far apart: every wake-up of the loop costs CPU
#: (about 0.15 ms on a VM), so the waits due in one slot wake the loop once, not once each.
POLL_SLOT = 0.05


class Log(Protocol):
    """What the poll core logs through: a ``logging.Logger``, a trigger's ``self.log``."""

    def info(self, msg: str, /, *args: object) -> object: ...

    def warning(self, msg: str, /, *args: object) -> object: ...

    def error(self, msg: str, /, *args: object) -> object: ...


def log_status(log: Log, status: CambTaskStatus, unknown_seen: set[str]) -> None:
    """Log a status read; an unknown status string once per wait, as a warning."""
    if status.is_known:
        log.info("CAMB task %s is %s.", status.task_id, status.status)
    elif status.status not in unknown_seen:
        unknown_seen.add(status.status)
        log.warning(
            "CAMB task %s reports an unknown status %r; treating it as not finished yet.", status.task_id, status.status
        )


async def poll_task(
    hook: CambHook,
    kind: CambKind,
    task_id: str,
    *,
    interval: float,
    deadline: float = math.inf,
    log: Log,
    wait_before_first_poll: bool = True,
) -> WaitEvent:
    """Poll one CAMB task until its outcome: ``finished``, ``deadline`` or ``error`` (never raises).

    Passing faults (network errors, 429, 5xx, unreadable replies) are retried with backoff until the
    deadline; permanent ones (401/403, 404, bad input, a missing connection) end the wait at once.
    Unknown status strings count as not yet terminal.

    :param hook: The hook of the connection; its shared session and rate limiter serve every poll.
    :param kind: The CAMB task kind.
    :param task_id: The CAMB task id.
    :param interval: Seconds between polls.
    :param deadline: Epoch seconds after which the wait ends with a ``deadline`` event.
    :param log: Where the statuses, the end and a cancellation are logged.
    :param wait_before_first_poll: Wait one interval before the first poll. Either way the first poll
        also waits a random phase of up to one interval, so waits started together do not poll in lockstep.
    """
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    polls, last, unknown_seen = 0, None, set[str]()
    first_poll = loop.time() + (interval if wait_before_first_poll else 0.0) + random.uniform(0, interval)
    next_poll = math.ceil(first_poll / POLL_SLOT) * POLL_SLOT  # waits due in one slot share a wake-up
    try:
        async with hook.async_session():
            while True:
                pause = min(next_poll - loop.time(), deadline - time.time())
                if pause > 0:
                    await asyncio.sleep(pause)
                if time.time() >= deadline:
                    return _deadline(log, kind, task_id, last, polls, started)
                try:
                    status = await hook.aget_task_status(kind, task_id, retry_until=deadline)
                except CambError as error:
                    if error.transient:  # still failing when the deadline came
                        return _deadline(log, kind, task_id, last, polls, started, cause=str(error))
                    return _error(log, kind, task_id, error, polls, started)
                except AirflowNotFoundException as error:  # no such connection
                    return _error(log, kind, task_id, error, polls, started)
                polls += 1
                if last is None or status.status != last.status:
                    log_status(log, status, unknown_seen)
                last = status
                if status.is_terminal:
                    elapsed = time.monotonic() - started
                    log.info(
                        "CAMB task %s ended with %s after %d polls in %.1f s.", task_id, status.status, polls, elapsed
                    )
                    return events.encode_finished(status, polls, elapsed)
                while next_poll <= loop.time():  # keep to the grid, skip slots a slow reply used up
                    next_poll += interval
    except asyncio.CancelledError:
        log.info("Stopped waiting for CAMB task %s after %d polls (cancelled).", task_id, polls)
        raise


async def poll_tasks(
    hook: CambHook,
    kind: CambKind,
    task_ids: Iterable[str],
    *,
    interval: float,
    deadline: float = math.inf,
    log: Log,
    wait_before_first_poll: bool = True,
) -> AsyncIterator[WaitEvent]:
    """Poll many CAMB tasks of one kind in one coroutine; yield each outcome as it comes.

    Each task is polled as by ``poll_task`` (its own grid phase, the key's shared limiter). Closing the
    iterator early cancels the polls still running.
    """
    async with hook.async_session():  # one shared session for the whole batch
        polls = [
            asyncio.ensure_future(
                poll_task(
                    hook,
                    kind,
                    task_id,
                    interval=interval,
                    deadline=deadline,
                    log=log,
                    wait_before_first_poll=wait_before_first_poll,
                )
            )
            for task_id in task_ids
        ]
        try:
            for outcome in asyncio.as_completed(polls):
                yield await outcome
        finally:
            for poll in polls:
                poll.cancel()
            await asyncio.gather(*polls, return_exceptions=True)


def _deadline(
    log: Log,
    kind: CambKind,
    task_id: str,
    last: CambTaskStatus | None,
    polls: int,
    started: float,
    cause: str | None = None,
) -> WaitEvent:
    event = events.encode_deadline(kind, task_id, last, polls, time.monotonic() - started, cause)
    log.warning("%s; %d polls in %.1f s.", event["message"], polls, event["elapsed"])
    return event


def _error(log: Log, kind: CambKind, task_id: str, error: Exception, polls: int, started: float) -> WaitEvent:
    log.error("Stopped waiting for CAMB task %s: %s", task_id, error)
    return events.encode_error(kind, task_id, error, polls, time.monotonic() - started)
