"""The retry policy of every CAMB request, sync and async alike (tenacity does the looping)."""

from __future__ import annotations

import math
import random
import time
from typing import Any

from tenacity import RetryCallState, stop_after_attempt, stop_never

from airflow_provider_camb.api import ApiRequest, LinkRequest
from airflow_provider_camb.exceptions import CambError, CambRateLimitError
from airflow_provider_camb.settings import CambSettings

MAX_RETRY_AFTER = 300.0


def should_retry(error: BaseException, may_repeat: bool, rate_limits: bool = True) -> bool:
    """Transient faults are retried; a request that may start a paid task only when it provably did not run.

    ``rate_limits=False`` leaves 429s to the caller (a batch waits its turn on the key's limiter instead).
    """
    if not isinstance(error, CambError) or not error.transient:
        return False
    if isinstance(error, CambRateLimitError):
        return rate_limits
    return may_repeat or not error.request_sent


def backoff_delay(attempt: int, backoff: float, backoff_max: float) -> float:
    """Exponential backoff with jitter: ``backoff * 2**(attempt - 1) + uniform(0, backoff)``, at most ``backoff_max``.

    Written here rather than tenacity's ``wait_exponential_jitter``, whose parameters differ between the
    tenacity releases Airflow 2.11 and 3.3 allow (``initial`` is deprecated in 9.x).
    """
    return min(backoff_max, backoff * 2.0 ** min(attempt - 1, 64) + random.uniform(0, backoff))


def retry_policy(
    request: ApiRequest | LinkRequest,
    settings: CambSettings,
    log: Any,
    *,
    retry_until: float | None = None,
    may_repeat: bool | None = None,
    rate_limits: bool = True,
) -> dict[str, Any]:
    """Keyword arguments for ``tenacity.Retrying`` or ``AsyncRetrying``.

    By default a request is tried ``1 + settings.retries`` times; with ``retry_until`` (epoch seconds,
    ``math.inf`` for ever) transient faults are retried until then instead. A server's requested
    delay (``Retry-After``) is honoured, otherwise the wait grows exponentially with jitter.
    """
    repeatable = request.may_repeat if may_repeat is None else may_repeat

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        asked = getattr(error, "retry_after", None)
        # A server's requested delay is honoured, up to a cap: a Retry-After of a year must not park a worker.
        if asked is not None:
            delay = min(float(asked), MAX_RETRY_AFTER)
        else:
            delay = backoff_delay(state.attempt_number, settings.backoff, settings.backoff_max)
        if retry_until is not None and math.isfinite(retry_until):
            delay = max(0.0, min(delay, retry_until - time.time()))
        return delay

    def past_deadline(state: RetryCallState) -> bool:
        assert retry_until is not None
        return time.time() + (state.upcoming_sleep or 0.0) >= retry_until and math.isfinite(retry_until)

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("Attempt %d failed: %s Retrying in %.1f s.", state.attempt_number, error, state.upcoming_sleep)

    stop: Any
    if retry_until is None:
        stop = stop_after_attempt(1 + settings.retries)
    elif math.isfinite(retry_until):
        stop = past_deadline
    else:
        stop = stop_never
    return {
        "stop": stop,
        "wait": wait,
        "retry": lambda state: bool(
            state.outcome and state.outcome.failed and should_retry(state.outcome.exception(), repeatable, rate_limits)
        ),
        "before_sleep": before_sleep,
        "reraise": True,
    }
