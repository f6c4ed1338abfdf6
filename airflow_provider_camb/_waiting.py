"""Waiting for a CAMB task of any kind: the one waiting path of every sensor and every waiting operator.

``wait_or_defer`` checks once, finishes at once if the task is already terminal, else defers to
``CambTaskTrigger``; ``resume`` turns the trigger's event into the same outcome; ``wait_on_worker``
is the worker-side loop, which ends in an event of the same schema (``airflow_provider_camb.events``).
Every path ends in ``end_of``: the run id (also pushed as XCom ``run_id``), or the typed error that
explains the end. With ``end_from_trigger`` a SUCCESS ends in the triggerer
itself, with the same XComs, and no worker resumes the task.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from airflow_provider_camb import _deprecated, events, exceptions
from airflow_provider_camb.api import CambTaskStatus
from airflow_provider_camb.events import WaitEvent, deadline_message
from airflow_provider_camb.exceptions import CambError, CambInputError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.kinds import CambKind
from airflow_provider_camb.triggers._resume_margin import DEFAULT_RESUME_MARGIN
from airflow_provider_camb.triggers.camb_task import CambTaskTrigger

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseTrigger, Context

__all__ = ["DEFAULT_POLL_INTERVAL", "DEFAULT_RESUME_MARGIN", "DEFAULT_TIMEOUT"]

if not TYPE_CHECKING:  # the 0.1.0 names, each with a warning once (type checkers see only the new ones)
    __getattr__ = _deprecated.module_getattr(__name__)

DEFAULT_POLL_INTERVAL = 5.0
#: The longest wait of every sensor and waiting operator unless told otherwise. CAMB ends its own
#: stuck tasks with TIMEOUT; this is the safety net above that.
DEFAULT_TIMEOUT = timedelta(hours=24)


class Waiter(Protocol):
    """What a waiting operator or sensor offers the waiting path (see ``CambTaskSensor``)."""

    camb_conn_id: str
    poll_interval: float
    end_from_trigger: bool
    resume_margin: float
    execution_timeout: timedelta | None

    @property
    def kind(self) -> CambKind: ...

    @property
    def log(self) -> Any: ...

    @property
    def hook(self) -> CambHook: ...

    @property
    def wait_timeout(self) -> float: ...

    def waited_task_id(self, context: Context) -> str: ...

    def defer(
        self, *, trigger: BaseTrigger, method_name: str, kwargs: dict[str, Any] | None = ..., timeout: Any = ...
    ) -> NoReturn: ...


def ends_in_the_triggerer(end_from_trigger: bool | None) -> bool:
    """``end_from_trigger`` as given; by default (None) yes, unless Airflow has listeners.

    Airflow refuses to load a DAG whose task ends in the triggerer while listeners from plugins (for
    example OpenLineage's) are registered, since those listeners only hear of tasks that end on a
    worker. So with listeners the wait resumes on a worker, as in 0.1.0.
    """
    if end_from_trigger is not None:
        return end_from_trigger
    from airflow.providers.common.compat.sdk import get_listener_manager

    return not get_listener_manager().has_listeners


def seconds(value: float | timedelta, name: str, *, zero: bool = False) -> float:
    """A positive (or, with ``zero``, also 0) number of seconds from a number or a ``timedelta``."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0 if zero else value > 0):
        what = "zero or a positive" if zero else "a positive"
        raise CambInputError(f"{name} must be {what} number of seconds, got {value!r}.")
    return float(value)


def check_once(hook: CambHook, kind: CambKind, camb_task_id: str, log: Any) -> CambTaskStatus | None:
    """One status check; None when a passing fault outlasted the hook's retries (the wait goes on)."""
    try:
        status = hook.get_task_status(kind, camb_task_id)
    except CambError as error:
        if not error.transient:
            raise
        log.warning("Could not check CAMB task %s (%s); waiting on.", camb_task_id, error)
        return None
    log.info("CAMB %s task %s is %s.", kind.label, camb_task_id, status.status)
    return status


def trigger_for(waiter: Waiter, camb_task_id: str) -> CambTaskTrigger:
    """The trigger to defer to: first poll one interval from now, a deadline ``wait_timeout`` seconds away.

    It carries the deferral time, from which ``resume_margin`` counts (``triggers/_resume_margin.py``).
    """
    now = time.time()
    return CambTaskTrigger(
        kind=waiter.kind.name,
        camb_task_id=camb_task_id,
        camb_conn_id=waiter.camb_conn_id,
        poll_interval=waiter.poll_interval,
        deadline=now + waiter.wait_timeout,
        wait_before_first_poll=True,
        end_from_trigger=waiter.end_from_trigger,
        created_at=waiter.hook.created_at(camb_task_id),
        deferred_at=now,
        resume_margin=waiter.resume_margin,
    )


def wait_or_defer(waiter: Waiter, context: Context, camb_task_id: str) -> int:
    """Check once: finish now if the task is already done (so no trigger can race), else defer."""
    status = check_once(waiter.hook, waiter.kind, camb_task_id, waiter.log)
    if status is not None and status.is_terminal:
        return finish(status, context)
    waiter.defer(
        trigger=trigger_for(waiter, camb_task_id), method_name="execute_complete", timeout=waiter.execution_timeout
    )


def resume(waiter: Waiter, context: Context, event: dict[str, Any] | str) -> int:
    """After the trigger fired: the same outcome as when the task was already done; nothing is created again.

    A task-end event reaches a worker only where no triggerer handles it (``dag.test()`` hands its
    payload, ``"success"``, to the task): its XComs are lost there, so the status is read once more.
    """
    if not isinstance(event, dict):
        camb_task_id = waiter.waited_task_id(context)
        waiter.log.info("The trigger ended the wait (%s); reading CAMB task %s once more.", event, camb_task_id)
        return wait_on_worker(waiter, context, camb_task_id)
    decoded = events.decode_event(event)
    if decoded["outcome"] == events.FINISHED:
        waiter.log.info(
            "CAMB task %s ended with %s after %d polls.", decoded["task_id"], decoded["status"], decoded["polls"]
        )
    return end_of(waiter, decoded, context)


def end_of(waiter: Waiter, event: WaitEvent, context: Context) -> int:
    """The one mapping from a wait's outcome, in the triggerer or on a worker, to the task's end."""
    if event["outcome"] == events.ERROR:
        raise events.error_of(event)
    if event["outcome"] == events.DEADLINE:
        raise timeout_error(waiter, event["task_id"], event["message"])
    return finish(events.status_of(event), context)


def timeout_error(waiter: Waiter, camb_task_id: str, detail: str | None = None) -> exceptions.CambWaitTimeoutError:
    """The one error of every wait that ran out of time, whichever path noticed it."""
    what = detail or deadline_message(waiter.kind, camb_task_id, polled=False)
    return exceptions.CambWaitTimeoutError(  # not imported by name: _waiting.CambWaitTimeoutError is a 0.1.0 name
        f"{what}. {type(waiter).__name__}'s timeout is {timedelta(seconds=waiter.wait_timeout)}; raise it if tasks "
        f"take longer, or check task {camb_task_id!r} with CAMB.AI (a new attempt would create a new, paid task)."
    )


def wait_on_worker(waiter: Waiter, context: Context, camb_task_id: str) -> int:
    """Wait here, on the worker, and end as a deferred wait would (``end_of``)."""
    return end_of(waiter, poll_until_terminal(waiter, camb_task_id), context)


def poll_until_terminal(waiter: Waiter, camb_task_id: str) -> WaitEvent:
    """Check now, then every ``poll_interval`` seconds (``time.sleep``) until a terminal status.

    Passing faults are logged and the wait goes on; permanent ones (401/403, 404) raise. Past
    ``wait_timeout`` seconds: a ``deadline`` event. The last check happens at the deadline itself.
    """
    started = time.monotonic()
    deadline = started + waiter.wait_timeout
    last: CambTaskStatus | None = None
    polls = 0
    while True:
        status = check_once(waiter.hook, waiter.kind, camb_task_id, waiter.log)
        polls += 1
        if status is not None:
            if status.is_terminal:
                return events.encode_finished(status, polls, time.monotonic() - started)
            last = status
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return events.encode_deadline(waiter.kind, camb_task_id, last, polls, time.monotonic() - started)
        time.sleep(min(waiter.poll_interval, remaining))


def finish(status: CambTaskStatus, context: Context) -> int:
    """The one end of every wait: the run id, also pushed as XCom ``run_id``; or the error that explains the end.

    ERROR and TIMEOUT raise ``CambTaskFailedError`` (Airflow's retries apply); PAYMENT_REQUIRED raises
    ``CambPaymentRequiredError``, which fails without retries.
    """
    run_id = status.run_id_or_raise()
    context["ti"].xcom_push(key="run_id", value=run_id)
    return run_id
