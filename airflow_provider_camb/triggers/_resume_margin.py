"""When a wait that resumes on a worker may fire: no sooner than ``resume_margin`` after it deferred.

When a task defers, the worker that ran it exits and the executor reports "success" for that try.
Airflow 3.3.2 and 2.11.2 fail the task if the scheduler reads that stale report after it has queued
the resumed attempt (apache/airflow#72716): in one scheduler loop it queues what the triggerer made
ready, then reads the executor's reports. Nothing the trigger can read tells it that the report was
read, so a trigger whose event resumes the task on a worker holds the event until ``resume_margin``
seconds after the deferral: by then the worker has exited and a scheduler loop has read its report.
Why that, and how the default was sized: docs/ending-waits.md.
"""

from __future__ import annotations

import time
from typing import Any

#: Seconds between the deferral and the resume on a worker, by default. Measured on 2 loaded cores, the
#: stale report was read at most 7.5 s after the deferral (the worker exits within a second; the rest is
#: the scheduler's loop); this leaves room for slower schedulers. Raise it where a scheduler loop
#: (``scheduler.scheduler_loop_duration``) often takes more than ~12 s.
DEFAULT_RESUME_MARGIN = 30.0


def resume_hold(
    *, deferred_at: float | None, resume_margin: float | None, started: float, now: float | None = None
) -> float:
    """Seconds to hold an event that resumes the task on a worker (0: fire now).

    :param deferred_at: Epoch seconds when the worker deferred; None for a row written before the
        provider stored it, counted from ``started`` instead (later than the deferral, so never shorter).
    :param resume_margin: Seconds from the deferral; None (an older row) means ``DEFAULT_RESUME_MARGIN``.
    :param started: Epoch seconds when this trigger started running.
    """
    margin = DEFAULT_RESUME_MARGIN if resume_margin is None else resume_margin
    since = started if deferred_at is None else deferred_at
    return max(0.0, since + margin - (time.time() if now is None else now))


def trigger_hold(trigger: Any, *, started: float) -> float:
    """Seconds ``trigger`` (with ``deferred_at`` and ``resume_margin``) holds an event that resumes its task on a
    worker (0: fire now). Only in a triggerer, which sets ``trigger_id``: ``dag.test()`` and a wait on the worker
    have no scheduler to race.
    """
    if getattr(trigger, "trigger_id", None) is None:
        return 0.0
    return resume_hold(deferred_at=trigger.deferred_at, resume_margin=trigger.resume_margin, started=started)


def log_hold(log: Any, hold: float) -> None:
    """Say why an event waits ``hold`` seconds before it resumes the task on a worker."""
    log.info(
        "Resuming the Airflow task on a worker in %.1f s, so the scheduler has read the exit of the "
        "worker that deferred it first (apache/airflow#72716; resume_margin).",
        hold,
    )
