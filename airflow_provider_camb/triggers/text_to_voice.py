"""TextToVoiceTrigger: wait in the triggerer until a CAMB text-to-voice task reaches a terminal status."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.common.compat.sdk import AirflowNotFoundException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_camb import exceptions
from airflow_provider_camb.api import TextToVoiceStatus
from airflow_provider_camb.exceptions import CambError
from airflow_provider_camb.hooks.camb import CambHook

#: Polls start on slots of the loop clock this far apart: every wake-up of the loop costs CPU
#: (about 0.15 ms on a VM), so the triggers due in one slot wake the loop once, not once each.
POLL_SLOT = 0.05

#: Event statuses of our own, besides CAMB's terminal statuses.
EVENT_TIMEOUT = "timeout"
EVENT_ERROR = "error"


class TextToVoiceTrigger(BaseTrigger):
    """Poll ``GET /text-to-voice/{task_id}`` until a terminal status, then fire exactly one event.

    Passing faults (network errors, timeouts, 429, 5xx, unreadable replies) are retried with backoff
    until the deadline; permanent ones (401/403, 404) end the wait with an ``error`` event. Unknown
    status strings count as not yet terminal. Polls follow a fixed grid with a random phase, so many
    triggers started together do not poll in lockstep. The event is
    ``{"status", "task_id", "run_id", "message", "exception_reason", "polls", "elapsed"}``.

    :param camb_task_id: The CAMB task id to wait for.
    :param camb_conn_id: The Airflow connection id; the connection is read inside ``run()``.
    :param poll_interval: Seconds between polls.
    :param deadline: Epoch seconds after which the wait ends with a ``timeout`` event; None waits for ever.
    :param wait_before_first_poll: Wait one interval before the first poll. Either way the first poll
        also waits a random phase of up to one interval, so triggers started together do not poll in lockstep.
    """

    def __init__(
        self,
        camb_task_id: str,
        camb_conn_id: str = CambHook.default_conn_name,
        poll_interval: float = 5.0,
        deadline: float | None = None,
        wait_before_first_poll: bool = True,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's BaseTrigger is untyped
        self.camb_task_id = camb_task_id
        self.camb_conn_id = camb_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = deadline
        self.wait_before_first_poll = wait_before_first_poll

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Only plain ids and numbers: the row is stored in Airflow's database, so never a secret."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "camb_task_id": self.camb_task_id,
                "camb_conn_id": self.camb_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "wait_before_first_poll": self.wait_before_first_poll,
            },
        )

    def _event(self, status: str, started: float, polls: int, **fields: Any) -> TriggerEvent:
        payload = {
            "status": status,
            "task_id": self.camb_task_id,
            "run_id": None,
            "message": None,
            "exception_reason": None,
            "polls": polls,
            "elapsed": round(time.monotonic() - started, 3),
        }
        payload.update(fields)
        return TriggerEvent(payload)  # type: ignore[no-untyped-call]

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # The shared session is released before the event leaves, so nothing is left open when the
        # triggerer (or dag.test) closes this generator.
        yield await self._wait()

    async def _wait(self) -> TriggerEvent:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        deadline = math.inf if self.deadline is None else self.deadline
        hook = CambHook(self.camb_conn_id)
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
                        status = await hook.aget_text_to_voice_status(self.camb_task_id, retry_until=deadline)
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
                        self.log.info(
                            "CAMB task %s ended with %s after %d polls in %.1f s.",
                            self.camb_task_id,
                            status.status,
                            polls,
                            time.monotonic() - started,
                        )
                        return self._event(
                            status.status,
                            started,
                            polls,
                            run_id=status.run_id,
                            message=status.message,
                            exception_reason=status.exception_reason,
                        )
                    while next_poll <= loop.time():  # keep to the grid, skip slots a slow reply used up
                        next_poll += self.poll_interval
        except asyncio.CancelledError:
            self.log.info("Stopped waiting for CAMB task %s after %d polls (cancelled).", self.camb_task_id, polls)
            raise

    def _log_status(self, status: TextToVoiceStatus, unknown_seen: set[str]) -> None:
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
        self, started: float, polls: int, last: TextToVoiceStatus | None, cause: str | None = None
    ) -> TriggerEvent:
        message = f"CAMB task {self.camb_task_id!r} did not finish before the deadline" + (
            f" (last status {last.status})" if last else " (no status read)"
        )
        if cause:
            message += f"; the last request failed: {cause}"
        self.log.warning("%s; %d polls in %.1f s.", message, polls, time.monotonic() - started)
        return self._event(EVENT_TIMEOUT, started, polls, message=message)

    def _error(self, started: float, polls: int, error: Exception) -> TriggerEvent:
        self.log.error("Stopped waiting for CAMB task %s: %s", self.camb_task_id, error)
        return self._event(EVENT_ERROR, started, polls, message=str(error), exception_reason=type(error).__name__)


def status_from_event(event: dict[str, Any]) -> TextToVoiceStatus:
    """Turn a trigger event back into a status; raise the typed error for ``error`` events.

    A ``timeout`` event comes back as a status ``timeout`` so each caller raises its own timeout.
    """
    if event.get("status") == EVENT_ERROR:
        error_type = getattr(exceptions, str(event.get("exception_reason")), None)
        if not (isinstance(error_type, type) and issubclass(error_type, CambError)):
            error_type = CambError
        raise error_type(str(event.get("message")))
    return TextToVoiceStatus(
        task_id=str(event.get("task_id")),
        status=str(event.get("status")),
        run_id=event.get("run_id"),
        message=event.get("message"),
        exception_reason=event.get("exception_reason"),
    )
