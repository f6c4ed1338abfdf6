"""CambBatchTrigger: one wait in the triggerer for every pending CAMB task of a batch.

The poll core (``polling.poll_tasks``: one poll per CAMB task on its grid and random phase, one shared
session, the key's rate limiter and retries), all in one trigger. It fires once, with the outcome
of every task that finished, when

- every task is terminal, or
- ``enough`` tasks finished (the batch has items waiting for the slots they free), or
- the deadline passed (the tasks still pending then report the deadline);

and, in a triggerer, never sooner than ``resume_margin`` seconds after the batch deferred: its event
resumes the task on a worker, and the scheduler must have read the exit of the worker that deferred
first (apache/airflow#72716; ``triggers/_resume_margin.py``). Tasks that finish while it holds go
along in the event; those still pending when it fires early are simply polled again by the next wait.

Its serialized row holds only the CAMB task ids and numbers: about 40 bytes per pending task
(``max_in_flight`` of them at most) plus 350 bytes, so 40 KB for a batch of any size with
``max_in_flight=1000``. A triggerer that dies loses nothing: the next one runs the
same row and polls the same ids again.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import suppress

from airflow.triggers.base import TriggerEvent

from airflow_provider_camb.events import WaitEvent
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.kinds import kind_of
from airflow_provider_camb.polling import Log, poll_tasks
from airflow_provider_camb.triggers._base import CambTrigger
from airflow_provider_camb.triggers._resume_margin import log_hold, trigger_hold

#: Seconds between progress lines.
PROGRESS_EVERY = 60.0


class CambBatchTrigger(CambTrigger):
    """Wait for many CAMB tasks of one kind at once; fire with the outcomes of those that finished.

    The event is ``{"finished": [outcome, ...], "pending": n, "deadline": ..., "creates_stopped": ...}``,
    where each outcome is one task's typed event of ``airflow_provider_camb.events`` (``finished`` with
    CAMB's terminal status, ``deadline``, or ``error`` when the task cannot be read; about 250 bytes each),
    and the last two are this trigger's own, for the batch to go on with.

    :param kind: The CAMB task kind of every task.
    :param camb_task_ids: The CAMB task ids to wait for.
    :param camb_conn_id: The Airflow connection id; the connection is read inside ``run()``.
    :param poll_interval: Seconds between polls of each task.
    :param deadline: Epoch seconds after which the tasks still pending report the deadline.
    :param enough: Fire once this many tasks finished (0: only when all did).
    :param total: How many items the whole batch has, and ``done`` how many of them are done, for the
        progress lines and their estimate of the time left.
    :param creates_stopped: The batch stopped creating (PAYMENT_REQUIRED); handed back in the event.
    :param deferred_at: Epoch seconds when the batch deferred; None (a row without it): when ``run()`` started.
    :param resume_margin: Least seconds from the deferral to the event (in a triggerer); None: the default.
    """

    def __init__(
        self,
        kind: str,
        camb_task_ids: Iterable[str],
        camb_conn_id: str = CambHook.default_conn_name,
        poll_interval: float = 5.0,
        deadline: float | None = None,
        enough: int = 0,
        total: int = 0,
        done: int = 0,
        creates_stopped: bool = False,
        deferred_at: float | None = None,
        resume_margin: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's BaseTrigger is untyped
        self.kind = kind
        self.camb_task_ids = list(camb_task_ids)
        self.camb_conn_id = camb_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = deadline
        self.enough = int(enough)
        self.total = int(total)
        self.done = int(done)
        self.creates_stopped = bool(creates_stopped)
        self.deferred_at = deferred_at
        self.resume_margin = resume_margin

    @property
    def fires_after(self) -> int:
        """How many finished tasks make it fire: ``enough``, or every task."""
        total = len(self.camb_task_ids)
        return self.enough if 0 < self.enough < total else total

    async def run(self) -> AsyncIterator[TriggerEvent]:
        finished = await wait_for_batch(self, self.log)
        yield TriggerEvent(  # type: ignore[no-untyped-call]
            {
                "finished": finished,
                "pending": len(self.camb_task_ids) - len(finished),
                "deadline": self.deadline,
                "creates_stopped": self.creates_stopped,
            }
        )


class _Quiet:
    """The poll core's log for a batch: warnings and errors only; the batch's own progress lines say the rest."""

    def __init__(self, log: Log) -> None:
        self._log = log

    def info(self, msg: str, /, *args: object) -> None:
        pass

    def warning(self, msg: str, /, *args: object) -> object:
        return self._log.warning(msg, *args)

    def error(self, msg: str, /, *args: object) -> object:
        return self._log.error(msg, *args)


async def wait_for_batch(batch: CambBatchTrigger, log: Log, *, until: float | None = None) -> list[WaitEvent]:
    """Poll every task of ``batch`` until it fires (see ``CambBatchTrigger``); return the outcomes that came.

    The same coroutine serves the triggerer and a batch that waits on its worker (``deferrable=False``, or
    a deferrable batch's first look before it defers), where nothing deferred, so nothing holds. ``until``
    (epoch seconds): return then with what finished so far; the rest stay pending, not at their deadline.
    """
    hold = trigger_hold(batch, started=time.time())
    started = time.monotonic()
    kind = kind_of(batch.kind)  # a name read from the trigger row: resolved here, once
    deadline = math.inf if batch.deadline is None else batch.deadline
    total, enough = len(batch.camb_task_ids), batch.fires_after
    hold_until = started + hold
    stop = math.inf if until is None else started + (until - time.time())
    arrived: asyncio.Queue[WaitEvent] = asyncio.Queue()

    async def collect() -> None:
        polls = poll_tasks(
            CambHook(batch.camb_conn_id),
            kind,
            batch.camb_task_ids,
            interval=batch.poll_interval,
            deadline=deadline,
            log=_Quiet(log),
        )
        async for outcome in polls:
            arrived.put_nowait(outcome)

    collector = asyncio.ensure_future(collect())
    finished: list[WaitEvent] = []
    next_report = started + PROGRESS_EVERY
    try:
        while (
            len(finished) < total
            and not (len(finished) >= enough and time.monotonic() >= hold_until)
            and time.monotonic() < stop
        ):
            wake = min(next_report, stop, hold_until if len(finished) >= enough else math.inf)
            with suppress(TimeoutError):
                finished.append(await asyncio.wait_for(arrived.get(), max(0.0, wake - time.monotonic())))
            if time.monotonic() >= next_report:
                _report(batch, finished, total - len(finished), time.monotonic() - started, log)
                next_report += PROGRESS_EVERY
        if time.monotonic() < hold_until and time.time() < deadline:
            log_hold(log, hold_until - time.monotonic())
            await asyncio.sleep(hold_until - time.monotonic())
    finally:
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
    while not arrived.empty():  # came in while it stopped: done, so they go along
        finished.append(arrived.get_nowait())
    _report(batch, finished, total - len(finished), time.monotonic() - started, log)
    return finished


def _report(batch: CambBatchTrigger, finished: list[WaitEvent], pending: int, elapsed: float, log: Log) -> None:
    by_status = Counter(str(outcome.get("status", outcome["outcome"])) for outcome in finished)
    counts = ", ".join(f"{status} {count}" for status, count in sorted(by_status.items())) or "none yet"
    left = ""
    if finished and pending:
        seconds = elapsed / len(finished) * (pending + max(0, batch.total - batch.done - len(batch.camb_task_ids)))
        left = f"; about {seconds / 60:.0f} min left at this pace" if seconds >= 90 else f"; about {seconds:.0f} s left"
    log.info(
        "CAMB batch of %d items: %d done before this wait; of its %d %s tasks %d finished (%s), %d pending%s.",
        batch.total,
        batch.done,
        len(batch.camb_task_ids),
        batch.kind,
        len(finished),
        counts,
        pending,
        left,
    )
