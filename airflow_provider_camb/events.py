"""What a wait on a CAMB task reports: the one schema of its trigger events, with encode and decode.

A wait ends with one of three outcomes, names of our own that never mix with CAMB's statuses:

- ``finished``: the CAMB task reached a terminal status; ``status`` is CAMB's (``SUCCESS``, ``ERROR``,
  ``TIMEOUT``, ``PAYMENT_REQUIRED``), with CAMB's ``run_id``, ``message`` and ``exception_reason``.
- ``deadline``: the wait ran out of time; ``last_status`` is the last status read, if any.
- ``error``: the wait could not go on (401/403, 404, bad input, no connection); ``error_type`` names the
  provider's error class (one of ``ERROR_TYPES``), never CAMB's ``exception_reason``.

Events are stored as JSON in Airflow's database between the triggerer and the worker that resumes
the task, so ``decode_event`` also reads what earlier releases wrote: ``{"status", "task_id", "run_id",
"message", "exception_reason", "polls", "elapsed"}`` (0.1.0; ``kind`` added later), where ``status``
was CAMB's status or our own ``"timeout"`` or ``"error"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, TypeAlias, TypedDict

from airflow_provider_camb.api import CambTaskStatus
from airflow_provider_camb.exceptions import (
    CambApiError,
    CambAuthError,
    CambError,
    CambInputError,
    CambNotFoundError,
    CambPaymentRequiredError,
    CambResponseError,
    CambValidationError,
)
from airflow_provider_camb.kinds import KINDS, TEXT_TO_VOICE, CambKind, kind_of

FINISHED: Final = "finished"
DEADLINE: Final = "deadline"
ERROR: Final = "error"
#: Every outcome a wait can end with.
OUTCOMES: Final = frozenset({FINISHED, DEADLINE, ERROR})

#: The errors an ``error`` event can carry, by ``error_type``; any other name decodes as ``CambError``.
ERROR_TYPES: Final[Mapping[str, type[CambError]]] = {
    error.__name__: error
    for error in (
        CambError,
        CambInputError,
        CambAuthError,
        CambNotFoundError,
        CambValidationError,
        CambPaymentRequiredError,
        CambApiError,
        CambResponseError,
    )
}


class FinishedEvent(TypedDict):
    """The CAMB task reached a terminal status (CAMB's own, in ``status``)."""

    outcome: Literal["finished"]
    kind: str
    task_id: str
    status: str
    run_id: int | None
    message: str | dict[str, Any] | None
    exception_reason: str | None
    polls: int
    elapsed: float


class DeadlineEvent(TypedDict):
    """The wait ran out of time; ``message`` says which task, its last status and the last failure."""

    outcome: Literal["deadline"]
    kind: str
    task_id: str
    last_status: str | None
    message: str
    polls: int
    elapsed: float


class ErrorEvent(TypedDict):
    """The wait could not go on; ``error_type`` is the provider's error class, ``message`` its text."""

    outcome: Literal["error"]
    kind: str
    task_id: str
    error_type: str
    message: str
    polls: int
    elapsed: float


WaitEvent: TypeAlias = FinishedEvent | DeadlineEvent | ErrorEvent


def label_of(kind: CambKind | str) -> str:
    """Human words for a kind ("text-to-speech"); for a name this release does not know, the name itself."""
    if isinstance(kind, CambKind):
        return kind.label
    return KINDS[kind].label if kind in KINDS else kind


def deadline_message(
    kind: CambKind | str,
    task_id: str,
    last: CambTaskStatus | None = None,
    cause: str | None = None,
    *,
    polled: bool = True,
) -> str:
    """What to say when a wait ran out of time: the task, its last status, and the last failure if any."""
    message = f"CAMB {label_of(kind)} task {task_id!r} did not finish before the deadline"
    if polled:
        message += f" (last status {last.status})" if last else " (no status read)"
    if cause:
        message += f"; the last request failed: {cause}"
    return message


# --- encode ----------------------------------------------------------------------------------------


def encode_finished(status: CambTaskStatus, polls: int, elapsed: float) -> FinishedEvent:
    """The event of a task that reached a terminal status."""
    return {
        "outcome": FINISHED,
        "kind": status.kind.name,
        "task_id": status.task_id,
        "status": status.status,
        "run_id": status.run_id,
        "message": status.message,
        "exception_reason": status.exception_reason,
        "polls": polls,
        "elapsed": round(elapsed, 3),
    }


def encode_deadline(
    kind: CambKind, task_id: str, last: CambTaskStatus | None, polls: int, elapsed: float, cause: str | None = None
) -> DeadlineEvent:
    """The event of a wait that ran out of time (``cause``: the last failed request, if it failed)."""
    return {
        "outcome": DEADLINE,
        "kind": kind.name,
        "task_id": task_id,
        "last_status": last.status if last else None,
        "message": deadline_message(kind, task_id, last, cause),
        "polls": polls,
        "elapsed": round(elapsed, 3),
    }


def encode_error(kind: CambKind | str, task_id: str, error: Exception, polls: int, elapsed: float) -> ErrorEvent:
    """The event of a wait that could not go on; errors not of this provider travel as ``CambError``.

    ``kind`` may be a name this release does not know: the error may be that very name, read from a row.
    """
    name = kind.name if isinstance(kind, CambKind) else kind
    return _error_event(name, task_id, type(error).__name__, str(error), polls, round(elapsed, 3))


def _error_event(kind: str, task_id: str, error_type: object, message: str, polls: int, elapsed: float) -> ErrorEvent:
    return {
        "outcome": ERROR,
        "kind": kind,
        "task_id": task_id,
        "error_type": error_type if isinstance(error_type, str) and error_type in ERROR_TYPES else CambError.__name__,
        "message": message,
        "polls": polls,
        "elapsed": elapsed,
    }


# --- decode ----------------------------------------------------------------------------------------


def decode_event(payload: object) -> WaitEvent:
    """Read a stored event, of this release or an earlier one; a ``CambError`` for anything else."""
    if not isinstance(payload, Mapping):
        raise _unreadable(payload, "not a JSON object")
    kind, task_id = payload.get("kind") or TEXT_TO_VOICE.name, payload.get("task_id")  # 0.1.0 wrote no kind
    if not isinstance(task_id, str) or not isinstance(kind, str):
        raise _unreadable(payload, "no task_id or kind")
    polls, elapsed, message = payload.get("polls"), payload.get("elapsed"), payload.get("message")
    polls = polls if isinstance(polls, int) else 0
    elapsed = float(elapsed) if isinstance(elapsed, (int, float)) else 0.0
    outcome = payload.get("outcome")
    if outcome is None:  # written before 0.2.0, when our outcomes shared "status" with CAMB's statuses
        outcome = {"timeout": DEADLINE, "error": ERROR}.get(str(payload.get("status")), FINISHED)
    if outcome == DEADLINE:
        last = payload.get("last_status")
        return {
            "outcome": DEADLINE,
            "kind": kind,
            "task_id": task_id,
            "last_status": last if isinstance(last, str) else None,
            "message": message if isinstance(message, str) else deadline_message(kind, task_id, polled=False),
            "polls": polls,
            "elapsed": elapsed,
        }
    if outcome == ERROR:
        error_type = payload.get("error_type", payload.get("exception_reason"))  # before 0.2.0: exception_reason
        return _error_event(kind, task_id, error_type, str(message), polls, elapsed)
    if outcome != FINISHED:
        raise _unreadable(payload, f"unknown outcome {outcome!r}")
    status, run_id, reason = payload.get("status"), payload.get("run_id"), payload.get("exception_reason")
    if not isinstance(status, str):
        raise _unreadable(payload, "no CAMB status")
    if run_id is not None and (isinstance(run_id, bool) or not isinstance(run_id, int)):
        raise _unreadable(payload, "a run_id that is not a whole number")
    return {
        "outcome": FINISHED,
        "kind": kind,
        "task_id": task_id,
        "status": status,
        "run_id": run_id,
        "message": message if message is None or isinstance(message, (str, dict)) else str(message),
        "exception_reason": None if reason is None else str(reason),
        "polls": polls,
        "elapsed": elapsed,
    }


def status_of(event: FinishedEvent) -> CambTaskStatus:
    """The CAMB status a ``finished`` event carries; a ``CambInputError`` for a kind this release does not know."""
    return CambTaskStatus(
        task_id=event["task_id"],
        status=event["status"],
        run_id=event["run_id"],
        message=event["message"],
        exception_reason=event["exception_reason"],
        kind=kind_of(event["kind"]),  # a name read from the database: resolved here, once
    )


def error_of(event: ErrorEvent) -> CambError:
    """The typed error an ``error`` event stands for."""
    return ERROR_TYPES.get(event["error_type"], CambError)(event["message"])


def _unreadable(payload: object, why: str) -> CambError:
    return CambError(
        f"The trigger's event could not be read ({why}): {str(payload)[:200]!r}. It was not written by a "
        "release of airflow-provider-camb this one reads (0.1.0 or later); clear the task to wait again."
    )
