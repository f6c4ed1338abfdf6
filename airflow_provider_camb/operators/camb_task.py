"""CambTaskOperator: the base of every operator that starts a CAMB task, and optionally waits for it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_camb import _waiting
from airflow_provider_camb._task_memory import TASK, CambCreate, TaskMemory, look_for, starting
from airflow_provider_camb.api import CambTaskStatus, TaskStatus
from airflow_provider_camb.operators._base import CambCreatingOperator

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class CambTaskOperator(CambCreatingOperator):
    """Start a CAMB task (``create``, written by each kind's operator); return its task id or, waiting, its run id.

    The CAMB task id is returned and also pushed as XCom ``task_id``. With ``wait_for_completion=True``
    the operator then waits for the task exactly like ``CambTaskSensor`` and returns its ``run_id``
    (also pushed as XCom ``run_id``): deferrable, it checks once, finishes at once if the task is
    already done, else waits in the triggerer, which also ends the task on SUCCESS
    (``end_from_trigger``); otherwise it polls from the worker. ERROR or TIMEOUT raise
    ``CambTaskFailedError`` (Airflow's retries apply); PAYMENT_REQUIRED fails without retries; past
    ``timeout`` a ``CambWaitTimeoutError`` fails without retries. Resuming never creates the task again.

    A retry never pays twice (README, "Retries and billing"): on Airflow 3.3+ the task id is kept in the
    task state store the moment the create reply arrives, and a later try reattaches to a PENDING or
    SUCCESS task (ERROR, TIMEOUT or PAYMENT_REQUIRED: it creates a new one). A create that was sent but got
    no usable reply fails without retries, as does, before Airflow 3.3, a retry (it cannot know what an
    earlier try created); ``retry_uncertain_create=True`` lets Airflow's retries create anew instead.

    :param camb_conn_id: The Airflow connection of type ``camb``.
    :param project_name: Optional CAMB project name (templated in every subclass).
    :param project_description: Optional CAMB project description (templated).
    :param folder_id: Optional CAMB folder id, an integer or digit string (templated).
    :param wait_for_completion: Wait until the task ends and return its run id (default False).
    :param poll_interval: Seconds between status checks while waiting.
    :param timeout: Longest wait in seconds or a ``timedelta`` (default 24 hours).
    :param deferrable: Wait in the triggerer (default: ``[operators] default_deferrable``).
    :param end_from_trigger: Waiting deferred, end the task in the triggerer on SUCCESS. The default is True
        unless Airflow has listeners (e.g. OpenLineage's), which need tasks to end on a worker.
    :param retry_uncertain_create: Let Airflow's retries create a new task when CAMB may have created one
        whose id is unknown (default False: fail without retries, which never pays twice).
    """

    #: The colour of every create operator in the Airflow UI.
    ui_color = "#d6e4ff"

    def __init__(
        self,
        *,
        wait_for_completion: bool = False,
        end_from_trigger: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.wait_for_completion = wait_for_completion
        self.end_from_trigger = _waiting.ends_in_the_triggerer(end_from_trigger)

    @property
    def wait_timeout(self) -> float:
        return self.timeout

    def waited_task_id(self, context: Context) -> str:
        """The CAMB task this operator created (its XCom ``task_id``)."""
        ti = context["ti"]
        return str(ti.xcom_pull(task_ids=ti.task_id, key="task_id", map_indexes=ti.map_index))

    def create(self, context: Context) -> str:
        """Start the CAMB task from this operator's own fields (its kind's fields by name, checked before
        anything is sent); return its task id."""
        return self.hook.create(self.kind, self.kind.fields_of(self))

    def look_for(self) -> str:
        """How a person recognises this operator's task in CAMB.AI: its project and the start of its text."""
        return look_for(self.project_name, starting(self.described_by, getattr(self, self.described_by, None)))

    def execute(self, context: Context) -> Any:
        camb_task_id, status = self._task_of_this_try(context)
        context["ti"].xcom_push(key="task_id", value=camb_task_id)
        self._record(camb_task_id)
        if not self.wait_for_completion:
            return camb_task_id
        if status is not None and status.is_terminal:  # an earlier try's task that already succeeded
            run_id = _waiting.finish(status, context)
        elif self.deferrable:
            run_id = _waiting.wait_or_defer(self, context, camb_task_id)
        else:
            run_id = _waiting.wait_on_worker(self, context, camb_task_id)
        self._record(camb_task_id, run_id)
        return run_id

    def _task_of_this_try(self, context: Context) -> tuple[str, CambTaskStatus | None]:
        """An earlier try's task that is PENDING or SUCCESS (with its status), else a new one."""
        memory = TaskMemory.of(context, self)
        create = CambCreate(TASK, f"CAMB {self.kind.label} task", self.look_for())
        earlier = memory.recall(create)
        if earlier is not None:
            camb_task_id = str(earlier.camb_id)
            if earlier.replied_at is not None:
                self.hook.note_created(camb_task_id, earlier.replied_at)
            status = self.hook.get_task_status(self.kind, camb_task_id)
            if status.status not in TaskStatus.REPLACED_BY_A_RETRY:
                self.log.info(
                    "Try %d reattaches to %s %s, created by try %d and %s now: no new task is created.",
                    context["ti"].try_number,
                    create.what,
                    camb_task_id,
                    earlier.try_number,
                    status.status,
                )
                return camb_task_id, status
            self.log.warning(
                "%s %s, created by try %d, ended with %s: try %d creates a new one.",
                create.what,
                camb_task_id,
                earlier.try_number,
                status.status,
                context["ti"].try_number,
            )
        return memory.start(create, lambda: self.create(context)), None

    def execute_complete(self, context: Context, event: dict[str, Any] | str) -> int:
        """Resume after the trigger fired: the same outcome as when the task was already done; no new task."""
        run_id = _waiting.resume(self, context, event)
        self._record(self.waited_task_id(context), run_id)
        return run_id

    def _record(self, camb_task_id: str, run_id: int | None = None) -> None:
        """What this task created, for lineage (recorded here: reporting it later must do no I/O)."""
        self.record_task(self.hook.settings.base_url, self.kind, camb_task_id, run_id)
