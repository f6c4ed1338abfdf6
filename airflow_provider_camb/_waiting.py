"""Waiting for a CAMB text-to-voice task: the pieces every waiter shares (operator now, sensor later).

One check before deferring, the trigger to defer to, a worker-side polling loop, and the one way
every wait ends (``finish``): the run id (also pushed as XCom ``run_id``) or the typed error that
explains the end. Whoever waits (``TextToVoiceOperator(wait_for_completion=True)`` or
``TextToVoiceStatusSensor``) gets the same outcome on every path.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_camb.api import TextToVoiceStatus
from airflow_provider_camb.exceptions import CambError, CambInputError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.triggers.text_to_voice import EVENT_TIMEOUT, TextToVoiceTrigger, status_from_event

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class CambWaitTimeoutError(CambError, AirflowFailException):
    """The CAMB task did not finish within the waiter's ``timeout``; fails without retries.

    Retrying would create (and pay for) another CAMB task while the first may still finish.
    """


def seconds(value: float | timedelta, name: str) -> float:
    """A positive number of seconds from a number or a ``timedelta``; refuse anything else."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise CambInputError(f"{name} must be a positive number of seconds, got {value!r}.")
    return float(value)


def check_once(hook: CambHook, camb_task_id: str, log: Any) -> TextToVoiceStatus | None:
    """One status check; None when a passing fault outlasted the hook's retries (the wait goes on)."""
    try:
        status = hook.get_text_to_voice_status(camb_task_id)
    except CambError as error:
        if not error.transient:
            raise
        log.warning("Could not check CAMB task %s (%s); waiting on.", camb_task_id, error)
        return None
    log.info("CAMB task %s is %s.", camb_task_id, status.status)
    return status


def trigger_for(camb_task_id: str, camb_conn_id: str, poll_interval: float, timeout: float) -> TextToVoiceTrigger:
    """The trigger to defer to: first poll one interval from now, a deadline ``timeout`` seconds away."""
    return TextToVoiceTrigger(
        camb_task_id=camb_task_id,
        camb_conn_id=camb_conn_id,
        poll_interval=poll_interval,
        deadline=time.time() + timeout,
        wait_before_first_poll=True,
    )


def timeout_error(camb_task_id: str, waiter: str, timeout: float, detail: str | None = None) -> CambWaitTimeoutError:
    what = detail or f"CAMB task {camb_task_id!r} did not finish before the deadline"
    return CambWaitTimeoutError(
        f"{what}. {waiter}'s timeout is {timedelta(seconds=timeout)}; raise it if voices take longer, or check "
        f"task {camb_task_id!r} with CAMB.AI (a new attempt would create a new, paid task)."
    )


def poll_until_terminal(
    hook: CambHook, camb_task_id: str, *, poll_interval: float, timeout: float, waiter: str, log: Any
) -> TextToVoiceStatus:
    """Check now, then every ``poll_interval`` seconds (``time.sleep``) until a terminal status.

    Passing faults are logged and the wait goes on; permanent ones (401/403, 404) end it. Past
    ``timeout`` seconds: ``CambWaitTimeoutError``. The last check happens at the deadline itself.
    """
    deadline = time.monotonic() + timeout
    last: TextToVoiceStatus | None = None
    while True:
        status = check_once(hook, camb_task_id, log)
        if status is not None:
            if status.is_terminal:
                return status
            last = status
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            state = f"last status {last.status}" if last else "no status read"
            raise timeout_error(
                camb_task_id,
                waiter,
                timeout,
                f"CAMB task {camb_task_id!r} did not finish before the deadline ({state})",
            )
        time.sleep(min(poll_interval, remaining))


def status_after_deferral(event: dict[str, Any], *, waiter: str, timeout: float) -> TextToVoiceStatus:
    """The terminal status a trigger event carries; typed errors for ``error`` and ``timeout`` events."""
    status = status_from_event(event)
    if status.status == EVENT_TIMEOUT:
        detail = status.message if isinstance(status.message, str) else None
        raise timeout_error(status.task_id, waiter, timeout, detail)
    return status


def finish(status: TextToVoiceStatus, context: Context) -> int:
    """The one end of every wait: the run id, also pushed as XCom ``run_id``; or the error that explains the end.

    ERROR and TIMEOUT raise ``CambTaskFailedError`` (Airflow's retries apply); PAYMENT_REQUIRED raises
    ``CambPaymentRequiredError``, which fails without retries.
    """
    run_id = status.run_id_or_raise()
    context["ti"].xcom_push(key="run_id", value=run_id)
    return run_id
