"""CambTaskTrigger: wait in the triggerer until a CAMB task of any kind reaches a terminal status."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from airflow.triggers.base import TaskSuccessEvent, TriggerEvent

from airflow_provider_camb import _deprecated, events
from airflow_provider_camb.api import TaskStatus
from airflow_provider_camb.exceptions import CambInputError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.kinds import kind_of
from airflow_provider_camb.polling import poll_task
from airflow_provider_camb.triggers._base import CambTrigger
from airflow_provider_camb.triggers._resume_margin import log_hold, trigger_hold

__all__ = ["CambTaskTrigger"]

if not TYPE_CHECKING:  # the 0.1.0 names, each with a warning once (type checkers see only the new ones)
    __getattr__ = _deprecated.module_getattr(__name__)


class CambTaskTrigger(CambTrigger):
    """Poll ``GET /{kind}/{task_id}`` until a terminal status, then fire exactly one event.

    A thin wrapper over ``airflow_provider_camb.polling.poll_task``: passing faults are retried until
    the deadline, permanent ones end the wait with an ``error`` event, polls follow a fixed grid with a
    random phase, so many triggers started together do not poll in lockstep.

    With ``end_from_trigger``, SUCCESS ends the Airflow task right here (Airflow's ``TaskSuccessEvent``
    with XComs ``return_value`` and ``run_id``), so no worker resumes the task: that leaves nothing to
    race (apache/airflow#72716). Every other outcome resumes the task on a worker with an event of
    ``airflow_provider_camb.events`` (``finished``, ``deadline`` or ``error``), where it fails with the
    typed error, Airflow's retries applying as they should (docs/ending-waits.md). Run by a triggerer,
    such an event leaves no sooner than ``resume_margin`` seconds after the deferral, so the scheduler has
    read the deferring worker's exit first (apache/airflow#72716, ``_resume_margin``).

    :param camb_task_id: The CAMB task id to wait for (rendered here when the task starts in the triggerer).
    :param camb_conn_id: The Airflow connection id; the connection is read inside ``run()``.
    :param poll_interval: Seconds between polls.
    :param deadline: Epoch seconds after which the wait ends with a ``timeout`` event; None: see ``timeout``.
    :param wait_before_first_poll: Wait one interval before the first poll. Either way the first poll
        also waits a random phase of up to one interval, so triggers started together do not poll in lockstep.
    :param kind: The CAMB task kind (``text-to-voice``, ``tts``, ``dub``, ...).
    :param end_from_trigger: End the Airflow task here on SUCCESS instead of resuming it on a worker.
    :param timeout: Without a ``deadline``, seconds until the ``timeout`` event, for a wait started in the
        triggerer (no worker computes a deadline): they count from when Airflow deferred the task, through
        the task instance's ``trigger_timeout`` that the triggerer hands the trigger, so a trigger moved to
        another triggerer keeps its deadline; from the start of ``run()`` where Airflow hands none
        (``dag.test()``). None waits for ever.
    :param created_at: When this provider created the task (epoch seconds), if it did: a 404 within
        30 s of it is read-after-create lag, retried like a passing fault (rows without it: 404 is final).
    :param deferred_at: Epoch seconds when the worker deferred; None: when ``run()`` started.
    :param resume_margin: Least seconds from the deferral to an event that resumes the task on a worker;
        0 for a wait started in the triggerer (no worker deferred); None: the default (30 s).
    """

    def __init__(
        self,
        camb_task_id: str,
        camb_conn_id: str = CambHook.default_conn_name,
        poll_interval: float = 5.0,
        deadline: float | None = None,
        wait_before_first_poll: bool = True,
        *,
        kind: str,
        end_from_trigger: bool = False,
        timeout: float | None = None,
        created_at: float | None = None,
        deferred_at: float | None = None,
        resume_margin: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's BaseTrigger is untyped
        self.kind = kind  # a name, as the row holds it: resolved in run(), where a bad one ends the wait cleanly
        self.camb_task_id = camb_task_id
        self.camb_conn_id = camb_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = deadline
        self.wait_before_first_poll = wait_before_first_poll
        self.end_from_trigger = end_from_trigger
        self.timeout = timeout
        self.created_at = created_at
        self.deferred_at = deferred_at
        self.resume_margin = resume_margin

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # poll_task releases the shared session before it returns, so nothing is left open when the
        # triggerer (or dag.test) closes this generator.
        started = time.time()
        event = self._trigger_event(await self._wait(started))
        await self._hold_if_resuming_on_a_worker(event, started)
        yield event

    async def _hold_if_resuming_on_a_worker(self, event: TriggerEvent, started: float) -> None:
        """Hold an event that resumes the task on a worker until ``resume_margin`` after the deferral.

        Only in a triggerer (it sets ``trigger_id``): ``dag.test()`` has no scheduler to race.
        """
        if isinstance(event, TaskSuccessEvent):
            return
        hold = trigger_hold(self, started=started)
        if hold > 0:
            log_hold(self.log, hold)
            await asyncio.sleep(hold)

    async def _wait(self, started: float) -> events.WaitEvent:
        try:
            kind = kind_of(self.kind)  # resolved once; a bad row ends its wait with an error event
        except CambInputError as error:
            self.log.error("Stopped waiting for CAMB task %s: %s", self.camb_task_id, error)
            return events.encode_error(self.kind, self.camb_task_id, error, polls=0, elapsed=0.0)
        hook = CambHook(self.camb_conn_id)
        if self.created_at is not None:
            hook.note_created(self.camb_task_id, self.created_at)
        return await poll_task(
            hook,
            kind,
            self.camb_task_id,
            interval=self.poll_interval,
            deadline=self._deadline(started),
            log=self.log,
            wait_before_first_poll=self.wait_before_first_poll,
        )

    def _deadline(self, started: float) -> float:
        """The row's ``deadline``; else ``timeout`` from the deferral, as Airflow keeps it (see ``timeout``)."""
        if self.deadline is not None:
            return self.deadline
        if self.timeout is None:
            return math.inf
        airflows = self._airflow_timeout()
        if airflows is None:
            return started + self.timeout
        self.log.info(
            "Waiting for CAMB task %s until %s, Airflow's timeout of this task (it holds in any triggerer).",
            self.camb_task_id,
            airflows.isoformat(),
        )
        return min(airflows.timestamp(), started + self.timeout)

    def _airflow_timeout(self) -> datetime | None:
        """The task instance's ``trigger_timeout`` (aware, UTC), if the triggerer handed it over.

        Airflow sets it once, when it defers the task (the deferral plus ``StartTriggerArgs.timeout``), in
        the task instance's row, not the trigger's: a triggerer that takes the trigger over gets the same
        instant. Airflow 3 sets it as ``timeout_after``; Airflow 2.11 hands over the task instance itself.
        """
        when = getattr(self, "timeout_after", None)
        if when is None:
            when = getattr(getattr(self, "task_instance", None), "trigger_timeout", None)
        if not isinstance(when, datetime):
            return None
        return when if when.tzinfo else when.replace(tzinfo=timezone.utc)  # 2.11's column is naive UTC

    def _trigger_event(self, event: events.WaitEvent) -> TriggerEvent:
        """SUCCESS ends the Airflow task here with ``end_from_trigger``; every other event resumes it on a worker."""
        if (
            self.end_from_trigger
            and event["outcome"] == events.FINISHED
            and event["status"] == TaskStatus.SUCCESS
            and event["run_id"] is not None
        ):
            self.log.info("Ending the Airflow task here with run id %s (no worker resumes it).", event["run_id"])
            return TaskSuccessEvent(xcoms={"return_value": event["run_id"], "run_id": event["run_id"]})
        return TriggerEvent(dict(event))  # type: ignore[no-untyped-call]  # Airflow's TriggerEvent is untyped
