"""The DAG files that deployment tests and benchmarks give ``AirflowDeployment``: each shape written once.

- ``waits_for_listed_tasks``: a mapped, deferred wait for the CAMB task ids in the run's ``camb_task_ids``
  param (the test made those tasks on the stand-in), then, if asked, a mapped download of each run;
- ``create_wait_download``: one voice created, waited for (deferred) and downloaded, and one preview kept
  if asked;
- ``mapped_create_wait_download``: ``voices`` voices, each created, waited for and downloaded by mapped tasks.

Downloads go to the run's ``destination`` param unless a ``destination`` is given. The sources are
plain text: ``AirflowDeployment.add_dag`` writes them into the deployment's DAGs folder.
"""

from __future__ import annotations

from tests.shared import DESCRIPTION, TEXT

#: The destination of the downloads: the run's ``destination`` param.
FROM_PARAMS = "{{ params.destination }}"

_HEAD = """
import pendulum
from airflow.sdk import DAG, task
from airflow_provider_camb.operators.text_to_voice import (
    CambCreateCustomVoiceOperator,
    TextToVoiceOperator,
    TextToVoiceResultOperator,
)
from airflow_provider_camb.sensors.text_to_voice import TextToVoiceStatusSensor

with DAG(
    {dag_id!r},
    start_date=pendulum.datetime(2024, 1, 1),
    schedule=None,
    max_active_tasks={max_active_tasks},
    params={{"camb_task_ids": [], "destination": "/tmp/unused"}},
) as dag:
"""

_WAITS_FOR_LISTED_TASKS = """
    @task
    def camb_task_ids(params=None) -> list:
        return list(params["camb_task_ids"])

    wait = TextToVoiceStatusSensor.partial(
        task_id="wait", poll_interval={poll_interval}, deferrable=True, timeout={timeout}
    ).expand(camb_task_id=camb_task_ids())
"""

_CREATE_WAIT_DOWNLOAD = """
    create = TextToVoiceOperator(task_id="create", text={text!r}, voice_description={description!r})
    wait = TextToVoiceStatusSensor(
        task_id="wait", camb_task_id=create.output, poll_interval={poll_interval}, deferrable=True, timeout=600
    )
    download = TextToVoiceResultOperator(
        task_id="download", run_id=wait.output, destination={destination!r}, destination_conn_id={conn_id!r}
    )
"""

_MAPPED_CREATE_WAIT_DOWNLOAD = """
    @task
    def texts() -> list:
        return [f"Voice number {{i}} says hello." for i in range({voices})]

    create = TextToVoiceOperator.partial(task_id="create", voice_description={description!r}).expand(text=texts())
    wait = TextToVoiceStatusSensor.partial(
        task_id="wait", poll_interval={poll_interval}, deferrable=True, timeout={timeout}{wait_arguments}
    ).expand(camb_task_id=create.output)
"""

_MAPPED_DOWNLOAD = """
    TextToVoiceResultOperator.partial(task_id="download", destination={destination!r}).expand(run_id=wait.output)
"""

_KEEP = """
    CambCreateCustomVoiceOperator(
        task_id="keep", preview=1, previews=download.output, voice_name="Narrator", gender=2
    )
"""


def _head(dag_id: str, max_active_tasks: int = 1024) -> str:
    """The imports and the ``with DAG(...)`` line every shape starts with; its params are each shape's."""
    return _HEAD.format(dag_id=dag_id, max_active_tasks=max_active_tasks)


def waits_for_listed_tasks(
    dag_id: str,
    *,
    poll_interval: float,
    timeout: float,
    max_active_tasks: int = 1024,
    download: bool = True,
) -> str:
    """Wait, deferred and mapped, for the CAMB tasks in the ``camb_task_ids`` param; download each run if asked."""
    source = _head(dag_id, max_active_tasks) + _WAITS_FOR_LISTED_TASKS.format(
        poll_interval=poll_interval, timeout=timeout
    )
    return source + _MAPPED_DOWNLOAD.format(destination=FROM_PARAMS) if download else source


def create_wait_download(
    dag_id: str,
    *,
    poll_interval: float,
    destination: str = FROM_PARAMS,
    destination_conn_id: str | None = None,
    keep: bool = False,
) -> str:
    """One voice: create it, wait for it deferred, download its previews, and keep preview 1 if ``keep``."""
    source = _head(dag_id) + _CREATE_WAIT_DOWNLOAD.format(
        text=TEXT,
        description=DESCRIPTION,
        poll_interval=poll_interval,
        destination=destination,
        conn_id=destination_conn_id,
    )
    return source + _KEEP if keep else source


def mapped_create_wait_download(
    dag_id: str,
    *,
    voices: int,
    poll_interval: float,
    timeout: float,
    max_active_tasks: int = 1024,
    destination: str = FROM_PARAMS,
    wait_arguments: str = "",
) -> str:
    """``voices`` voices, each created, waited for deferred and downloaded by mapped tasks.

    :param wait_arguments: More keyword arguments of the wait, as source text: ``", end_from_trigger=False"``.
    """
    source = _head(dag_id, max_active_tasks) + _MAPPED_CREATE_WAIT_DOWNLOAD.format(
        voices=voices,
        description=DESCRIPTION,
        poll_interval=poll_interval,
        timeout=timeout,
        wait_arguments=wait_arguments,
    )
    return source + _MAPPED_DOWNLOAD.format(destination=destination)
