"""TextToVoiceStatusSensor: wait for a CAMB text-to-voice task and push its run_id to XCom."""

from __future__ import annotations

import time
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

from airflow_provider_camb.api import TextToVoiceStatus
from airflow_provider_camb.exceptions import CambError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.triggers.text_to_voice import EVENT_TIMEOUT, TextToVoiceTrigger, status_from_event

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
        try:
            status = self.hook.get_text_to_voice_status(self.camb_task_id)
        except CambError as error:
            if not error.transient:
                raise
            self.log.warning(
                "Could not check CAMB task %s yet (%s); waiting in the triggerer.", self.camb_task_id, error
            )
        else:
            self.log.info("CAMB task %s is %s.", self.camb_task_id, status.status)
            if status.is_terminal:  # already done: finish now, never defer (avoids a quick-trigger race)
                return self._finish(status, context)
        self.defer(
            trigger=TextToVoiceTrigger(
                camb_task_id=self.camb_task_id,
                camb_conn_id=self.camb_conn_id,
                poll_interval=self.poll_interval,
                deadline=time.time() + self.timeout,
                wait_before_first_poll=True,
            ),
            method_name="execute_complete",
            timeout=self.execution_timeout,
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        try:
            status = self.hook.get_text_to_voice_status(self.camb_task_id)
        except CambError as error:
            if not error.transient:
                raise
            self.log.warning(
                "Could not check CAMB task %s (%s); trying again at the next poke.", self.camb_task_id, error
            )
            return False
        self.log.info("CAMB task %s is %s.", self.camb_task_id, status.status)
        if not status.is_terminal:
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
        """The one outcome of every path: the run id, pushed to XCom, or the error that explains the end."""
        try:
            run_id = status.run_id_or_raise()
        except AirflowException as error:
            if self.soft_fail:
                raise AirflowSkipException(f"soft_fail is set, so skipping: {error}") from error
            raise
        context["ti"].xcom_push(key="run_id", value=run_id)
        return run_id
