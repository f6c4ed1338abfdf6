"""CambTaskTrigger: wait in the triggerer until a CAMB task of any kind reaches a terminal status."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.common.compat.sdk import AirflowNotFoundException
from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from airflow_provider_camb import events
from airflow_provider_camb.api import CambTaskStatus, TaskStatus
from airflow_provider_camb.events import deadline_message
from airflow_provider_camb.exceptions import CambError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.kinds import TEXT_TO_VOICE

#: Polls start on slots of the loop clock this far apart: every wake-up of the loop costs CPU
#: (about 0.15 ms on a VM), so the triggers due in one slot wake the loop once, not once each.
POLL_SLOT = 0.05

#: The statuses events had for our own outcomes before 0.2.0 (``status_from_event`` still returns "timeout").
EVENT_TIMEOUT = "timeout"
EVENT_ERROR = "error"

__all__ = ["POLL_SLOT", "CambTaskTrigger", "deadline_message", "status_from_event"]


class CambTaskTrigger(BaseTrigger):
    """Poll ``GET /{kind}/{task_id}`` until a terminal status, then fire exactly one event.

    Passing faults (network errors, timeouts, 429, 5xx, unreadable replies) are retried with backoff
    until the deadline; permanent ones (401/403, 404, bad input) end the wait with an ``error`` event.
    Unknown status strings count as not yet terminal. Polls follow a fixed grid with a random phase,
    so many triggers started together do not poll in lockstep.

    With ``end_from_trigger``, SUCCESS ends the Airflow task right here (Airflow's ``TaskSuccessEvent``
    with XComs ``return_value`` and ``run_id``), so no worker resumes the task: that leaves nothing to
    race (apache/airflow#72716). Every other outcome resumes the task on a worker with an event of
    ``airflow_provider_camb.events`` (``finished``, ``deadline`` or ``error``), where it fails with the
    typed error, Airflow's retries applying as they should (docs/ending-waits.md).

    :param camb_task_id: The CAMB task id to wait for (rendered here when the task starts in the triggerer).
    :param camb_conn_id: The Airflow connection id; the connection is read inside ``run()``.
    :param poll_interval: Seconds between polls.
    :param deadline: Epoch seconds after which the wait ends with a ``timeout`` event; None: see ``timeout``.
    :param wait_before_first_poll: Wait one interval before the first poll. Either way the first poll
        also waits a random phase of up to one interval, so triggers started together do not poll in lockstep.
    :param kind: The CAMB task kind (``text-to-voice``, ``tts``, ``dub``, ...).
    :param end_from_trigger: End the Airflow task here on SUCCESS instead of resuming it on a worker.
    :param timeout: Without a ``deadline``, seconds from the start of ``run()`` until the ``timeout``
        event (a wait started in the triggerer has no worker to compute a deadline); None waits for ever.
    :param created_at: When this provider created the task (epoch seconds), if it did: a 404 within
        30 s of it is read-after-create lag, retried like a passing fault (rows without it: 404 is final).
    """

    def __init__(
        self,
        camb_task_id: str,
        camb_conn_id: str = CambHook.default_conn_name,
        poll_interval: float = 5.0,
        deadline: float | None = None,
        wait_before_first_poll: bool = True,
        kind: str = TEXT_TO_VOICE.name,
        end_from_trigger: bool = False,
        timeout: float | None = None,
        created_at: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's BaseTrigger is untyped
        self.kind = kind  # checked in run(): a bad row must end its wait with an error event, not break the triggerer
        self.camb_task_id = camb_task_id
        self.camb_conn_id = camb_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = deadline
        self.wait_before_first_poll = wait_before_first_poll
        self.end_from_trigger = end_from_trigger
        self.timeout = timeout
        self.created_at = created_at

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Only plain ids and numbers: the row is stored in Airflow's database, so never a secret."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "kind": self.kind,
                "camb_task_id": self.camb_task_id,
                "camb_conn_id": self.camb_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "wait_before_first_poll": self.wait_before_first_poll,
                "end_from_trigger": self.end_from_trigger,
                "timeout": self.timeout,
                "created_at": self.created_at,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # The shared session is released before the event leaves, so nothing is left open when the
        # triggerer (or dag.test) closes this generator.
        yield await self._wait()

    async def _wait(self) -> TriggerEvent:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        deadline = self._deadline()
        hook = CambHook(self.camb_conn_id)
        if self.created_at is not None:
            hook.note_created(self.camb_task_id, self.created_at)
        polls, last, unknown_seen = 0, None, set[str]()
        phase = random.uniform(0, self.poll_interval)
        first_poll = loop.time() + (self.poll_interval if self.wait_before_first_poll else 0.0) + phase
        next_poll = math.ceil(first_poll / POLL_SLOT) * POLL_SLOT  # triggers due in one slot share a wake-up
        try:
            async with hook.async_session():
                while True:
                    pause = min(next_poll - loop.time(), deadline - time.time())
                    if pause > 0:
                        await asyncio.sleep(pause)
                    if time.time() >= deadline:
                        return self._timeout(started, polls, last)
                    try:
                        status = await hook.aget_task_status(self.kind, self.camb_task_id, retry_until=deadline)
                    except CambError as error:
                        if error.transient:  # still failing when the deadline came
                            return self._timeout(started, polls, last, cause=str(error))
                        return self._error(started, polls, error)
                    except AirflowNotFoundException as error:
                        return self._error(started, polls, error)
                    polls += 1
                    if last is None or status.status != last.status:
                        self._log_status(status, unknown_seen)
                    last = status
                    if status.is_terminal:
                        return self._terminal(status, started, polls)
                    while next_poll <= loop.time():  # keep to the grid, skip slots a slow reply used up
                        next_poll += self.poll_interval
        except asyncio.CancelledError:
            self.log.info("Stopped waiting for CAMB task %s after %d polls (cancelled).", self.camb_task_id, polls)
            raise

    def _deadline(self) -> float:
        if self.deadline is not None:
            return self.deadline
        return math.inf if self.timeout is None else time.time() + self.timeout

    def _terminal(self, status: CambTaskStatus, started: float, polls: int) -> TriggerEvent:
        self.log.info(
            "CAMB task %s ended with %s after %d polls in %.1f s.",
            self.camb_task_id,
            status.status,
            polls,
            time.monotonic() - started,
        )
        if self.end_from_trigger and status.status == TaskStatus.SUCCESS and status.run_id is not None:
            self.log.info("Ending the Airflow task here with run id %s (no worker resumes it).", status.run_id)
            xcoms: dict[str, Any] = {"return_value": status.run_id, "run_id": status.run_id}
            return TaskSuccessEvent(xcoms=xcoms)
        return _trigger_event(events.encode_finished(status, polls, time.monotonic() - started))

    def _log_status(self, status: CambTaskStatus, unknown_seen: set[str]) -> None:
        if status.is_known:
            self.log.info("CAMB task %s is %s.", self.camb_task_id, status.status)
        elif status.status not in unknown_seen:
            unknown_seen.add(status.status)
            self.log.warning(
                "CAMB task %s reports an unknown status %r; treating it as not finished yet.",
                self.camb_task_id,
                status.status,
            )

    def _timeout(
        self, started: float, polls: int, last: CambTaskStatus | None, cause: str | None = None
    ) -> TriggerEvent:
        event = events.encode_deadline(self.kind, self.camb_task_id, last, polls, time.monotonic() - started, cause)
        self.log.warning("%s; %d polls in %.1f s.", event["message"], polls, event["elapsed"])
        return _trigger_event(event)

    def _error(self, started: float, polls: int, error: Exception) -> TriggerEvent:
        self.log.error("Stopped waiting for CAMB task %s: %s", self.camb_task_id, error)
        elapsed = time.monotonic() - started
        return _trigger_event(events.encode_error(self.kind, self.camb_task_id, error, polls, elapsed))


def _trigger_event(event: events.WaitEvent) -> TriggerEvent:
    return TriggerEvent(dict(event))  # type: ignore[no-untyped-call]  # Airflow's TriggerEvent is untyped


def status_from_event(event: dict[str, Any]) -> CambTaskStatus:
    """A trigger event as a status, as before 0.2.0: raise the typed error of an ``error`` event, and
    return a status ``"timeout"`` for a ``deadline`` event. ``events.decode_event`` is the typed way.
    """
    decoded = events.decode_event(event)
    if decoded["outcome"] == events.ERROR:
        raise events.error_of(decoded)
    if decoded["outcome"] == events.DEADLINE:
        return CambTaskStatus(decoded["task_id"], EVENT_TIMEOUT, message=decoded["message"], kind=decoded["kind"])
    return events.status_of(decoded)
