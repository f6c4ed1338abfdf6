"""CambBatchTrigger: one wait in the triggerer for every pending CAMB task of a batch.

One coroutine per CAMB task, each the one-task poll of ``CambTaskTrigger`` (its grid, random phase,
shared session, per-key rate limiter and retries), all in one trigger. It fires once, with the outcome
of every task that finished, when

- every task is terminal, or
- ``enough`` tasks finished (the batch has items waiting for the slots they free), or
- the deadline passed (the tasks still pending then report the deadline);

and never sooner than ``MIN_WAIT`` seconds after it started (see below). Tasks still pending when it
fires early are simply polled again by the next wait. Its serialized row holds only the CAMB task ids and
numbers: about 40 bytes per pending task (``max_in_flight`` of them at most) plus 300 bytes, so 40 KB for a
batch of any size with ``max_in_flight=1000``. A triggerer that dies loses nothing: the next one runs the
same row and polls the same ids again.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.triggers.camb_task import CambTaskTrigger

#: A batch wait does not fire sooner than this after it started, unless at its deadline: a task resumed
#: seconds after it deferred can be failed by the stale "success" of its own deferral (apache/airflow#72716).
MIN_WAIT = 10.0
#: Seconds between progress lines.
PROGRESS_EVERY = 60.0


class CambBatchTrigger(BaseTrigger):
    """Wait for many CAMB tasks of one kind at once; fire with the outcomes of those that finished.

    The event is ``{"finished": [outcome, ...], "pending": n, "deadline": ..., "creates_stopped": ...}``,
    where each outcome is the event payload of ``CambTaskTrigger`` for one task (``status`` is CAMB's
    terminal status, or ``timeout`` at the deadline, or ``error`` when the task cannot be read), and the
    last two are this trigger's own, for the batch to go on with.

    :param kind: The CAMB task kind of every task.
    :param camb_task_ids: The CAMB task ids to wait for.
    :param camb_conn_id: The Airflow connection id; the connection is read inside ``run()``.
    :param poll_interval: Seconds between polls of each task.
    :param deadline: Epoch seconds after which the tasks still pending report the deadline.
    :param enough: Fire once this many tasks finished (0: only when all did).
    :param total: How many items the whole batch has, and ``done`` how many of them are done, for the
        progress lines and their estimate of the time left.
    :param creates_stopped: The batch stopped creating (PAYMENT_REQUIRED); handed back in the event.
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

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Only ids and numbers: the row is stored in Airflow's database, so never a secret."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "kind": self.kind,
                "camb_task_ids": self.camb_task_ids,
                "camb_conn_id": self.camb_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "enough": self.enough,
                "total": self.total,
                "done": self.done,
                "creates_stopped": self.creates_stopped,
            },
        )

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


async def _outcome(trigger: CambTaskTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("unreachable")  # pragma: no cover


async def wait_for_batch(batch: CambBatchTrigger, log: Any) -> list[dict[str, Any]]:
    """Poll every task of ``batch`` until it fires (see ``CambBatchTrigger``); return the finished outcomes.

    The same coroutine serves the triggerer and a batch that waits on its worker (``deferrable=False``).
    """
    started = time.monotonic()
    polls = {
        asyncio.ensure_future(
            _outcome(
                CambTaskTrigger(
                    task_id,
                    batch.camb_conn_id,
                    batch.poll_interval,
                    batch.deadline,
                    wait_before_first_poll=True,
                    kind=batch.kind,
                )
            )
        )
        for task_id in batch.camb_task_ids
    }
    enough = batch.enough if 0 < batch.enough < len(polls) else len(polls)
    finished: list[dict[str, Any]] = []
    next_report = started + PROGRESS_EVERY
    try:
        pending = set(polls)
        while pending and len(finished) < enough:
            timeout = max(0.0, next_report - time.monotonic())
            done, pending = await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finished += [task.result() for task in done]
            if time.monotonic() >= next_report:
                _report(batch, finished, len(pending), time.monotonic() - started, log)
                next_report += PROGRESS_EVERY
        hold = started + MIN_WAIT - time.monotonic()
        if hold > 0 and (batch.deadline is None or time.time() < batch.deadline):
            if pending:  # what else finishes meanwhile comes along
                done, pending = await asyncio.wait(pending, timeout=hold)
                finished += [task.result() for task in done]
            await asyncio.sleep(max(0.0, started + MIN_WAIT - time.monotonic()))
    finally:
        for task in polls:
            task.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
    _report(batch, finished, len(polls) - len(finished), time.monotonic() - started, log)
    return finished


def _report(batch: CambBatchTrigger, finished: list[dict[str, Any]], pending: int, elapsed: float, log: Any) -> None:
    by_status = Counter(str(outcome.get("status")) for outcome in finished)
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
