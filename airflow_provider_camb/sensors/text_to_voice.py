"""TextToVoiceStatusSensor: wait for a CAMB text-to-voice task and push its run_id to XCom."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_camb._waiting import check_once, finish, trigger_for
from airflow_provider_camb.api import TextToVoiceStatus
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.triggers.text_to_voice import EVENT_TIMEOUT, status_from_event

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class TextToVoiceStatusSensor(BaseSensorOperator):
    """Wait until a CAMB text-to-voice task finishes; return its ``run_id`` (also pushed as XCom ``run_id``).

    Deferrable mode checks once right away and finishes at once if the task is already done;
    otherwise it frees the worker slot and waits in the triggerer. Poke and reschedule modes ask
    the same question from the worker. Every path ends the same way: on SUCCESS the run id; on
    ERROR or TIMEOUT a ``CambTaskFailedError`` naming the task, its reason and what to do; on
    PAYMENT_REQUIRED a failure without retries; past ``timeout`` Airflow's sensor timeout.
    ``soft_fail`` turns any of these failures into a skip.

    :param camb_task_id: The CAMB task id (templated), e.g. the XCom of ``TextToVoiceOperator``.
    :param camb_conn_id: The Airflow connection of type ``camb``.
    :param poll_interval: Seconds between status checks, in every mode (sets ``poke_interval``).
    :param deferrable: Wait in the triggerer (default: ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("camb_task_id",)
    ui_color = "#e6f0ff"

    def __init__(
        self,
        *,
        camb_task_id: str,
        camb_conn_id: str = CambHook.default_conn_name,
        poll_interval: float = 5.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        self.camb_task_id = camb_task_id
        self.camb_conn_id = camb_conn_id
        self.poll_interval = poll_interval
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> CambHook:
        return CambHook(self.camb_conn_id)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        status = check_once(self.hook, self.camb_task_id, self.log)
        if status is not None and status.is_terminal:  # already done: finish now, never defer (no quick-trigger race)
            return self._finish(status, context)
        trigger = trigger_for(self.camb_task_id, self.camb_conn_id, self.poll_interval, self.timeout)
        self.defer(trigger=trigger, method_name="execute_complete", timeout=self.execution_timeout)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        status = check_once(self.hook, self.camb_task_id, self.log)
        if status is None or not status.is_terminal:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(status, context))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> int:
        """Resume after the trigger fired: the same outcome as when the task was already done."""
        status = status_from_event(event)
        if status.status == EVENT_TIMEOUT:
            raise AirflowSensorTimeout(
                f"{status.message}. The sensor's timeout is {timedelta(seconds=self.timeout)}; raise it if "
                "voices take longer, or check the task with CAMB.AI."
            )
        self.log.info(
            "CAMB task %s ended with %s after %s polls.", self.camb_task_id, status.status, event.get("polls")
        )
        return self._finish(status, context)

    def _finish(self, status: TextToVoiceStatus, context: Context) -> int:
        """The shared end of every wait; ``soft_fail`` turns a failure into a skip in every mode alike."""
        try:
            return finish(status, context)
        except AirflowException as error:
            if self.soft_fail:
                raise AirflowSkipException(f"soft_fail is set, so skipping: {error}") from error
            raise
