"""CambTaskSensor: wait for a CAMB task of any kind and push its run_id to XCom."""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)
from airflow.triggers.base import StartTriggerArgs

from airflow_provider_camb import _waiting
from airflow_provider_camb._waiting import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_RESUME_MARGIN,
    DEFAULT_TIMEOUT,
    check_once,
    seconds,
)
from airflow_provider_camb.api import CambTaskStatus
from airflow_provider_camb.exceptions import CambInputError, CambWaitTimeoutError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.kinds import CambKind, kind_of

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

_JINJA = re.compile(r"{{|{%|{#")
T = TypeVar("T")


def _triggerer_renders_templates() -> bool:
    """Airflow 3.3 renders a task's templated trigger kwargs in the triggerer; older releases do not."""
    from airflow import __version__ as airflow_version
    from packaging.version import Version

    return Version(Version(airflow_version).base_version) >= Version("3.3")


class CambTaskSensor(BaseSensorOperator):
    """Wait until a CAMB task of any kind finishes; return its ``run_id`` (also pushed as XCom ``run_id``).

    Deferrable mode checks once right away and finishes at once if the task is already done;
    otherwise it frees the worker slot and waits in the triggerer, where by default a SUCCESS also
    ends the task (``end_from_trigger``), so no worker is started again. With ``start_from_trigger``
    the wait does not need a worker at all. Poke and reschedule modes ask the same question from the
    worker. Every path ends the same way: on SUCCESS the run id; on ERROR or TIMEOUT a
    ``CambTaskFailedError`` naming the task, its reason and what to do (Airflow's retries apply); on
    PAYMENT_REQUIRED a failure without retries; past ``timeout`` a ``CambWaitTimeoutError`` (Airflow's
    sensor timeout, no retries). ``soft_fail`` turns any of these failures into a skip.

    :param kind: The CAMB task kind, a ``CambKind`` or its name: any of ``airflow_provider_camb.kinds.KINDS``
        (e.g. ``"tts"``).
    :param camb_task_id: The CAMB task id (templated), e.g. the XCom of a create operator.
    :param camb_conn_id: The Airflow connection of type ``camb``.
    :param poll_interval: Seconds between status checks, in every mode (sets ``poke_interval``).
    :param timeout: Longest wait in seconds or a ``timedelta`` (default 24 hours).
    :param deferrable: Wait in the triggerer (default: ``[operators] default_deferrable``).
    :param end_from_trigger: End the task in the triggerer on SUCCESS; False resumes on a worker. The default
        is True unless Airflow has listeners (e.g. OpenLineage's), which need tasks to end on a worker.
    :param resume_margin: A wait that resumes on a worker (listeners, ``end_from_trigger=False``, or a
        failure) does so no sooner than this many seconds (or a ``timedelta``) after it deferred, which
        keeps Airflow from failing it (apache/airflow#72716). 0 turns it off. Default 30 s.
    :param start_from_trigger: Start the wait in the triggerer, with no worker at all (Airflow 3.3+ for a
        templated ``camb_task_id``; not for mapped sensors). See the README for the forms of ``camb_task_id``.
    """

    template_fields: Sequence[str] = ("camb_task_id",)
    ui_color = "#e6f0ff"

    start_trigger_args = StartTriggerArgs(
        trigger_cls="airflow_provider_camb.triggers.camb_task.CambTaskTrigger",
        trigger_kwargs=None,
        next_method="execute_complete",
        next_kwargs=None,
        timeout=None,
    )
    start_from_trigger = False

    def __init__(
        self,
        *,
        kind: str | CambKind,
        camb_task_id: str,
        camb_conn_id: str = CambHook.default_conn_name,
        poll_interval: float | timedelta = DEFAULT_POLL_INTERVAL,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        end_from_trigger: bool | None = None,
        resume_margin: float | timedelta = DEFAULT_RESUME_MARGIN,
        start_from_trigger: bool = False,
        **kwargs: Any,
    ) -> None:
        interval = seconds(poll_interval, "poll_interval")
        kwargs.setdefault("poke_interval", interval)
        super().__init__(timeout=seconds(timeout, "timeout"), **kwargs)
        self.kind = kind_of(kind)  # resolved once, here; everything below takes the CambKind
        self.camb_task_id = camb_task_id
        self.camb_conn_id = camb_conn_id
        self.poll_interval = interval
        self.deferrable = deferrable
        self.end_from_trigger = _waiting.ends_in_the_triggerer(end_from_trigger)
        self.resume_margin = seconds(resume_margin, "resume_margin", zero=True)
        if start_from_trigger:
            self._start_in_the_triggerer()

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """Map the sensor; a mapped wait cannot start in the triggerer on Airflow 3.3 (it is refused here)."""
        if kwargs.get("start_from_trigger"):
            raise CambInputError(
                f"{cls.__name__}.partial(start_from_trigger=True) is not supported: Airflow 3.3 cannot start a "
                "mapped task in the triggerer (its scheduler does not expand the trigger's arguments). Drop "
                "start_from_trigger: each mapped wait then starts on a worker once and still ends in the "
                "triggerer (end_from_trigger), e.g. "
                f"{cls.__name__}.partial(task_id=..., deferrable=True).expand(camb_task_id=create.output)."
            )
        return super().partial(**kwargs)

    def _start_in_the_triggerer(self) -> None:
        """Set ``start_trigger_args`` so the scheduler defers this task straight to the triggerer."""
        camb_task_id = self._camb_task_id_for_the_triggerer()
        if camb_task_id is None:
            return
        self.start_from_trigger = True
        self.start_trigger_args = dataclasses.replace(
            self.start_trigger_args,
            trigger_kwargs={
                "kind": self.kind.name,
                "camb_task_id": camb_task_id,
                "camb_conn_id": self.camb_conn_id,
                "poll_interval": self.poll_interval,
                "wait_before_first_poll": False,
                "end_from_trigger": self.end_from_trigger,
                "timeout": self.wait_timeout,
                "resume_margin": 0.0,  # no worker deferred, so no stale exit to wait out
            },
            timeout=timedelta(seconds=self.wait_timeout),
        )

    def _camb_task_id_for_the_triggerer(self) -> str | None:
        """``camb_task_id`` in a form the triggerer can render, or None (with a warning) to defer from a worker.

        The triggerer of Airflow 3.3.2 serves ``xcom_pull`` only for one map index: a pull without
        ``map_indexes`` asks for a sequence, which its supervisor refuses, and the wait would hang. So
        ``create.output`` becomes the same pull with ``map_indexes=-1``, and other pulls must say it.
        """
        from airflow.providers.common.compat.sdk import XComArg

        value: object = self.camb_task_id
        templated = isinstance(value, XComArg) or (isinstance(value, str) and bool(_JINJA.search(value)))
        if templated and not _triggerer_renders_templates():
            warnings.warn(
                f"{type(self).__name__} {self.task_id!r}: start_from_trigger with a templated camb_task_id needs "
                "Airflow 3.3 or newer, whose triggerer renders templates. Deferring from a worker instead.",
                UserWarning,
                stacklevel=3,
            )
            return None
        if isinstance(value, XComArg):
            return self._pull_in_the_triggerer(value)
        if isinstance(value, str) and "xcom_pull" in value and "map_indexes" not in value:
            raise CambInputError(
                f"{type(self).__name__} {self.task_id!r}: with start_from_trigger, camb_task_id {value!r} cannot be "
                "rendered in the triggerer, whose xcom_pull must name one map index. Write "
                "\"{{ ti.xcom_pull(task_ids='create', map_indexes=-1) }}\" or pass create.output."
            )
        if not isinstance(value, str):
            raise CambInputError(f"camb_task_id must be a string or an XCom of the create task, got {value!r}.")
        return value

    def _pull_in_the_triggerer(self, value: Any) -> str:
        operator, key = getattr(value, "operator", None), getattr(value, "key", None)
        if operator is None or not isinstance(key, str) or getattr(operator, "is_mapped", False):
            raise CambInputError(
                f"{type(self).__name__} {self.task_id!r}: with start_from_trigger, camb_task_id must be the XCom "
                "of one unmapped task (create.output) or a string. For the task ids of a mapped create, map the "
                "sensor without start_from_trigger: .partial(...).expand(camb_task_id=create.output)."
            )
        return f"{{{{ ti.xcom_pull(task_ids={operator.task_id!r}, key={key!r}, map_indexes=-1) }}}}"

    @cached_property
    def hook(self) -> CambHook:
        return CambHook(self.camb_conn_id)

    @property
    def wait_timeout(self) -> float:
        return float(self.timeout)

    def waited_task_id(self, context: Context) -> str:
        return self.camb_task_id

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as error:  # Airflow's own, from poke or reschedule mode: say it our way
                if isinstance(error, CambWaitTimeoutError):
                    raise
                raise _waiting.timeout_error(self, self.camb_task_id) from error
        return self._soft_failing(lambda: _waiting.wait_or_defer(self, context, self.camb_task_id))

    def poke(self, context: Context) -> bool | PokeReturnValue:
        status = check_once(self.hook, self.kind, self.camb_task_id, self.log)
        if status is None or not status.is_terminal:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(status, context))

    def execute_complete(self, context: Context, event: dict[str, Any] | str) -> int:
        """Resume after the trigger fired: the same outcome as when the task was already done."""
        return self._soft_failing(lambda: _waiting.resume(self, context, event))

    def _finish(self, status: CambTaskStatus, context: Context) -> int:
        return self._soft_failing(lambda: _waiting.finish(status, context))

    def _soft_failing(self, end: Callable[[], T]) -> T:
        """``soft_fail`` turns a failure into a skip, in every mode alike."""
        try:
            return end()
        except AirflowException as error:
            if self.soft_fail and not isinstance(error, AirflowSkipException):
                raise AirflowSkipException(f"soft_fail is set, so skipping: {error}") from error
            raise
