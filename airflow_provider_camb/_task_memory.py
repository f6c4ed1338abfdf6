"""What a task instance created at CAMB, kept across its tries, so that a retry never pays twice.

CAMB has no idempotency key and no way to find a task again: the id in the create reply is the only
handle, and Airflow clears a task's XComs at the start of every try. ``TaskMemory`` keeps each create
of a task instance in Airflow 3.3's task state store (scoped to the DAG run, task and map index, kept
across tries), under one key per create (``TASK``, ``VOICE``, or ``item_key(i)`` for one item of many):

- just before the request is sent, the record says "sent at T by try N, no reply yet";
- the moment the reply arrives, it holds the CAMB id;
- a create CAMB certainly refused, or that never left, is forgotten;
- a create that was sent and got no usable reply (read timeout, reset, 5xx, a 2xx that is not the
  expected JSON) is uncertain: it fails the Airflow task without retries (``CambUncertainCreateError``),
  unless the operator opts in with ``retry_uncertain_create=True``.

A later try ``recall``s the record: an id to reattach to, or "sent, no reply", which is uncertain too
(the worker may have died in between). Clearing a task does not touch the store, but raises the task
instance's ``max_tries``: a record from before the last clear is ignored, so a deliberate rerun starts anew.

Before Airflow 3.3 there is no store. A first try creates as usual; a retry, which cannot know whether
an earlier try created something, fails without retries unless the operator opts in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import Any, Protocol, TypeVar

from airflow_provider_camb.exceptions import CambError, CambUncertainCreateError

#: The key of the CAMB task a create operator starts. Renaming it strands the records of running tasks.
TASK = "camb_task"
#: The key of the custom voice ``CambCreateCustomVoiceOperator`` creates.
VOICE = "camb_voice"

T = TypeVar("T", str, int)


def item_key(item: int | str) -> str:
    """The key of one item's CAMB task, for an operator that starts one task per item."""
    return f"{TASK}/{item}"


@dataclass(frozen=True)
class CambCreate:
    """One create of a task instance: its key, what it makes, and how a person recognises it in CAMB.AI."""

    key: str
    what: str  # e.g. "CAMB text-to-speech task", "CAMB custom voice"
    look_for: str  # e.g. "in project 'news' whose text starts 'Good morning'"


@dataclass(frozen=True)
class Started:
    """A create as the store keeps it."""

    sent_at: float  # epoch seconds, just before the request left
    try_number: int  # the try that sent it
    generation: int  # the task instance's max_tries then: clearing the task raises it
    camb_id: str | int | None = None  # None: sent, and no usable reply came back
    replied_at: float | None = None  # epoch seconds the reply arrived

    @classmethod
    def from_store(cls, value: dict[str, Any]) -> Started:
        """The record as ``asdict`` wrote it; ``ValueError`` when it is not one."""
        try:
            camb_id, replied_at = value.get("camb_id"), value.get("replied_at")
            if not isinstance(camb_id, (str, int, type(None))):
                raise TypeError(camb_id)
            return cls(
                sent_at=float(value["sent_at"]),
                try_number=int(value["try_number"]),
                generation=int(value["generation"]),
                camb_id=camb_id,
                replied_at=None if replied_at is None else float(replied_at),
            )
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"not a record of this provider: {str(value)[:200]!r}") from None


class Creator(Protocol):
    """What an operator that creates something at CAMB offers its memory."""

    retries: int | None
    retry_uncertain_create: bool

    @property
    def log(self) -> Any: ...


class TaskMemory:
    """The creates of one task instance, kept across its tries (see the module docstring).

    :param store: ``context["task_state_store"]``; None before Airflow 3.3.
    :param ti: The running task instance (its ``try_number`` and ``max_tries``).
    :param creator: The operator: its ``retries``, ``retry_uncertain_create`` and log.
    """

    def __init__(self, store: Any | None, ti: Any, creator: Creator) -> None:
        self._store = store
        self._try = int(ti.try_number)
        self._generation = int(ti.max_tries)
        self._retries = int(creator.retries or 0)
        self._creator = creator
        self._log = creator.log

    @classmethod
    def of(cls, context: Any, creator: Creator) -> TaskMemory:
        return cls(context.get("task_state_store"), context["ti"], creator)

    def recall(self, create: CambCreate) -> Started | None:
        """What an earlier try since the last clear created under ``create.key``; None: create anew.

        Raises ``CambUncertainCreateError`` (unless the operator opts in) when an earlier try may have
        created something this try cannot name: its create got no usable reply, or, with no store,
        this try is a retry.
        """
        if self._store is None:
            if not self._first_try():
                self._end(_unknown_before_3_3(create, self._try, self._creator))
            return None
        value = self._store.get(create.key)
        if value is None:
            return None
        try:
            started = Started.from_store(value)
        except ValueError as error:
            advice = _advice(create, self._creator)
            self._end(f"The task state store's record {create.key!r} cannot be read ({error}). {advice}")
            return None
        if started.generation != self._generation:
            self._log.info(
                "This task was cleared since try %d created %s %s: try %d creates a new one (a deliberate rerun).",
                started.try_number,
                create.what,
                started.camb_id if started.camb_id is not None else "(no reply)",
                self._try,
            )
            return None
        if started.camb_id is None:
            self._end(_sent_by_an_earlier_try(create, started, self._creator))
            return None
        return started

    def start(self, create: CambCreate, send: Callable[[], T]) -> T:
        """Send a create (``send()`` returns the new id), keeping it from before it leaves until it is known."""
        started = Started(time.time(), self._try, self._generation)
        self._keep(create.key, started)
        try:
            camb_id = send()
        except CambError as error:
            if not (error.transient and error.request_sent):
                self._forget(create.key)  # CAMB answered with a refusal, or nothing left: nothing was created
                raise
            self._end(_no_usable_reply(create, started, error, self._creator), cause=error)  # it left, no reply
            raise
        self._keep(create.key, replace(started, camb_id=camb_id, replied_at=time.time()))
        if self._store is not None:
            self._log.info(
                "Kept %s %s in the task state store: a retry of this task reattaches to it.", create.what, camb_id
            )
        return camb_id

    def _first_try(self) -> bool:
        """Without a store: is this the first try since the task was scheduled or last cleared?

        Clearing sets ``max_tries`` to the last try number plus ``retries``, so the first try after it is
        ``max_tries - retries + 1``; anything else (a retry, or ``retries`` changed since) counts as a retry.
        """
        return self._try <= 1 or self._try == self._generation - self._retries + 1

    def _end(self, message: str, cause: BaseException | None = None) -> None:
        """Fail this try without retries (``CambUncertainCreateError``); with the opt-in, only warn."""
        if not self._creator.retry_uncertain_create:
            raise CambUncertainCreateError(message) from cause
        self._log.warning("%s retry_uncertain_create=True, so going on: that may pay for a second one.", message)

    def _keep(self, key: str, started: Started) -> None:
        if self._store is not None:
            self._store.set(key, asdict(started))

    def _forget(self, key: str) -> None:
        if self._store is not None:
            self._store.delete(key)


def look_for(project_name: object, detail: str | None) -> str:
    """How a person recognises a create in CAMB.AI: its project name and a detail (see ``starting``)."""
    parts = (
        [f"in project {project_name.strip()[:80]!r}"] if isinstance(project_name, str) and project_name.strip() else []
    )
    return " ".join([*parts, *([detail] if detail else [])]) or "made at that time"


def starting(field: str, value: object) -> str | None:
    """``whose text starts 'Hello, and welcome...'``: the start of a text field, for ``look_for``."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = " ".join(value.split())
    return f"whose {field} starts {text[:60] + ('...' if len(text) > 60 else '')!r}"


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _advice(create: CambCreate, creator: Creator) -> str:
    return (
        f"Look in CAMB.AI for a {create.what.removeprefix('CAMB ')} {create.look_for}. If there is none, clear this "
        f"Airflow task to run it again; to let Airflow's retries create a new one instead, set "
        f"retry_uncertain_create=True on {type(creator).__name__}."
    )


def _no_usable_reply(create: CambCreate, started: Started, error: CambError, creator: Creator) -> str:
    return (
        f"CAMB may have created a {create.what.removeprefix('CAMB ')}: the create request was sent at "
        f"{_when(started.sent_at)} (try {started.try_number}) but no usable reply came back ({error}). CAMB has no "
        "idempotency key and no way to look one up, so this task fails without retries rather than pay for a "
        f"second one. {_advice(create, creator)}"
    )


def _sent_by_an_earlier_try(create: CambCreate, started: Started, creator: Creator) -> str:
    return (
        f"Try {started.try_number} of this task sent a create at {_when(started.sent_at)} and no usable reply was "
        f"kept (no reply came, or the worker died first), so CAMB may have created a "
        f"{create.what.removeprefix('CAMB ')} nobody knows the id of. This try fails without retries rather than "
        f"pay for a second one. {_advice(create, creator)}"
    )


def _unknown_before_3_3(create: CambCreate, try_number: int, creator: Creator) -> str:
    from airflow import __version__ as airflow_version

    return (
        f"Try {try_number} cannot know whether an earlier try of this task created a "
        f"{create.what.removeprefix('CAMB ')}: Airflow {airflow_version} has no task state store (it came in 3.3) "
        "and Airflow cleared the earlier try's XComs. So this try fails without retries rather than pay for a "
        "second one. The earlier try's log names what it created ('Created CAMB ...'). "
        f"{_advice(create, creator)} On Airflow 3.3 and later, retries reattach instead."
    )
