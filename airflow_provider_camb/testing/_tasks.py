"""The stand-in's task bookkeeping, shared by every kind: what new tasks become, the tasks, their runs."""

from __future__ import annotations

import itertools
import json
import math
import random
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypedDict, Unpack

from airflow_provider_camb.kinds import TEXT_TO_VOICE, kind_of
from airflow_provider_camb.testing import _audio


@dataclass(frozen=True)
class Settings:
    """What new tasks become (see ``CambStandIn.configure``)."""

    pending_seconds: float = 2.0
    outcome: str = "SUCCESS"
    exception_reason: str | None = None
    message: str | dict[str, Any] | None = None
    preview_count: int = 2
    preview_seconds: float = 1.0
    preview_bytes: int | None = None
    dub_video: bool = True  # whether a dubbing result has a video_url
    #: Count ``pending_seconds`` from the first status read instead of from creation ("the task takes
    #: that long once someone looks"), so a waiter's first check always finds it PENDING.
    pending_from_first_status: bool = False
    #: Instead of a time: a task stays PENDING for its first ``pending_reads`` status reads, then ends.
    pending_reads: int | None = None
    #: When set, each task stays PENDING a random time between ``pending_seconds`` and this (uniform).
    pending_seconds_max: float | None = None
    #: ``{marker: outcome}``: a task whose create body contains ``marker`` ends with that outcome instead.
    outcomes: dict[str, str] = field(default_factory=dict)

    def check(self) -> Settings:
        if not isinstance(self.outcome, str) or not self.outcome:
            raise ValueError(f"outcome must be a non-empty string, not {self.outcome!r}")
        for name in ("pending_seconds", "preview_seconds"):  # a negative pending_seconds: terminal at once
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                raise ValueError(f"{name} must be a number, not {value!r}")
        if self.preview_seconds < 0:
            raise ValueError(f"preview_seconds must be >= 0, not {self.preview_seconds!r}")
        for name in ("preview_count", "preview_bytes", "pending_reads"):
            value = getattr(self, name)
            if value is None and name in ("preview_bytes", "pending_reads"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0, not {value!r}")
        top = self.pending_seconds_max
        if top is not None and (
            isinstance(top, bool) or not isinstance(top, (int, float)) or top < self.pending_seconds
        ):
            raise ValueError(f"pending_seconds_max must be a number >= pending_seconds, not {top!r}")
        if not isinstance(self.outcomes, dict) or not all(
            isinstance(marker, str) and marker and isinstance(outcome, str) and outcome
            for marker, outcome in self.outcomes.items()
        ):
            raise ValueError(f"outcomes must map non-empty markers to outcomes, not {self.outcomes!r}")
        for name in ("dub_video", "pending_from_first_status"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, not {getattr(self, name)!r}")
        return self


SETTING_NAMES = frozenset(f.name for f in fields(Settings))
_DEFAULT_REASONS = {"ERROR": "PROCESSING_ERROR", "PAYMENT_REQUIRED": "PAYMENT_REQUIRED"}


class NewTask(TypedDict, total=False):
    """What a task made without HTTP (``CambStandIn.add_task``) does; what is left out comes from the settings."""

    kind: str  # default: text-to-voice
    status: str | None  # fixes what it reports from now on
    pending_seconds: float | None
    outcome: str | None
    exception_reason: str | None
    message: str | dict[str, Any] | None
    task_id: str | None  # default: a fresh UUID
    request: dict[str, Any] | None  # stands for its create body (e.g. a dubbing task's target_languages)


_NEW_TASK_NAMES = frozenset(NewTask.__annotations__)


@dataclass(frozen=True)
class Task:
    kind: str
    ready_at: float  # time.monotonic() when it leaves PENDING
    outcome: str
    exception_reason: str | None
    message: str | dict[str, Any] | None
    run_id: int | None

    def reply(self, now: float) -> dict[str, Any]:
        if now < self.ready_at:
            return {"status": "PENDING", "run_id": None, "exception_reason": None, "message": None}
        return {
            "status": self.outcome,
            "run_id": self.run_id,
            "exception_reason": self.exception_reason,
            "message": self.message,
        }


@dataclass(frozen=True)
class Run:
    """The result of a successful task: what its kind's result handler serves."""

    kind: str
    token: str  # the secret of its storage links
    previews: int
    data_bytes: int  # PCM bytes of each WAV it serves
    request: dict[str, Any] = field(default_factory=dict)  # the create body (e.g. dubbing's target languages)
    dub_video: bool = True


class Tasks:
    """Every task and run of one stand-in; thread-safe."""

    def __init__(self, settings: Settings) -> None:
        self._lock = threading.Lock()
        self.settings = settings.check()
        self._tasks: dict[str, Task] = {}
        self._runs: dict[int, Run] = {}
        self._run_ids = itertools.count(1000)
        self._voice_ids = itertools.count(5000)
        self.voices = 0  # custom voices created
        self._pending_from_first_status: dict[str, float] = {}  # task id -> its pending_seconds
        self._pending_reads: dict[str, int] = {}  # task id -> status reads it still answers PENDING

    def configure(self, **settings: Any) -> None:
        unknown = set(settings) - SETTING_NAMES
        if unknown:
            raise TypeError(f"Unknown stand-in settings: {', '.join(sorted(unknown))}")
        with self._lock:
            self.settings = replace(self.settings, **settings).check()

    def add(self, **task: Unpack[NewTask]) -> str:
        """Create a task (see ``NewTask``); ``status`` fixes what it reports from now on."""
        unknown = set(task) - _NEW_TASK_NAMES
        if unknown:
            raise TypeError(f"Unknown task options: {', '.join(sorted(unknown))}")
        kind = kind_of(task.get("kind", TEXT_TO_VOICE.name)).name
        status, outcome, pending_seconds = task.get("status"), task.get("outcome"), task.get("pending_seconds")
        request, task_id = task.get("request"), task.get("task_id")
        fixed = status if status not in (None, "PENDING") else outcome
        overrides: dict[str, Any] = {
            "pending_seconds": pending_seconds,
            "outcome": fixed,
            "exception_reason": task.get("exception_reason"),
            "message": task.get("message"),
        }
        with self._lock:
            settings = replace(self.settings, **{k: v for k, v in overrides.items() if v is not None}).check()
            if outcome is None and status is None and settings.outcomes and request:
                body = json.dumps(request)
                marked = [end for marker, end in settings.outcomes.items() if marker in body]
                settings = replace(settings, outcome=marked[0]) if marked else settings
            if pending_seconds is None and settings.pending_seconds_max is not None:
                settings = replace(
                    settings,
                    pending_seconds=random.uniform(settings.pending_seconds, settings.pending_seconds_max),
                )
            task_id = str(uuid.uuid4()) if task_id is None else task_id
            if status is None and settings.pending_reads is not None:
                ready_at = math.inf
                self._pending_reads[task_id] = settings.pending_reads
            elif status is None and settings.pending_from_first_status:
                ready_at = math.inf
                self._pending_from_first_status[task_id] = settings.pending_seconds
            elif status is None:
                ready_at = time.monotonic() + settings.pending_seconds
            else:
                ready_at = math.inf if status == "PENDING" else 0.0
            run_id = None
            if settings.outcome == "SUCCESS":
                run_id = next(self._run_ids)
                size = (
                    _audio.data_bytes_for_seconds(settings.preview_seconds)
                    if settings.preview_bytes is None
                    else _audio.data_bytes_for_size(settings.preview_bytes)
                )
                self._runs[run_id] = Run(
                    kind, secrets.token_urlsafe(16), settings.preview_count, size, request or {}, settings.dub_video
                )
                reason, note = None, None
            else:
                reason = settings.exception_reason or _DEFAULT_REASONS.get(settings.outcome)
                note = settings.message if settings.message is not None else f"The task ended with {settings.outcome}."
            self._tasks[task_id] = Task(kind, ready_at, settings.outcome, reason, note, run_id)
            return task_id

    def task(self, task_id: str) -> Task | None:
        with self._lock:
            return self._tasks.get(task_id)

    def status_read(self, task_id: str, now: float) -> Task | None:
        """The task as a status read sees it at ``now``; a task pending from its first read starts its clock."""
        with self._lock:
            task = self._tasks.get(task_id)
            pending = self._pending_from_first_status.pop(task_id, None)
            if task is not None and pending is not None:
                task = self._tasks[task_id] = replace(task, ready_at=now + pending)
            reads = self._pending_reads.get(task_id)
            if task is not None and reads is not None:
                if reads > 0:
                    self._pending_reads[task_id] = reads - 1
                else:
                    del self._pending_reads[task_id]
                    task = self._tasks[task_id] = replace(task, ready_at=now)
            return task

    def run(self, run_id: int) -> Run | None:
        with self._lock:
            return self._runs.get(run_id)

    def new_voice_id(self) -> int:
        with self._lock:
            self.voices += 1
            return next(self._voice_ids)

    def count(self) -> int:
        """How many tasks exist (each one CAMB would bill)."""
        with self._lock:
            return len(self._tasks)
