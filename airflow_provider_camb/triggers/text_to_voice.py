"""TextToVoiceTrigger: the 0.1.0 name of the wait for a text-to-voice task; ``CambTaskTrigger`` does the work.

Trigger rows that 0.1.0 wrote name this class with the kwargs ``camb_task_id``, ``camb_conn_id``,
``poll_interval``, ``deadline`` and ``wait_before_first_poll``; they load and finish unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_camb import _deprecated
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.kinds import TEXT_TO_VOICE
from airflow_provider_camb.triggers.camb_task import CambTaskTrigger

__all__ = ["TextToVoiceTrigger"]

if not TYPE_CHECKING:  # the 0.1.0 names, each with a warning once (type checkers see only the new ones)
    __getattr__ = _deprecated.module_getattr(__name__)


class TextToVoiceTrigger(CambTaskTrigger):
    """Poll ``GET /text-to-voice/{task_id}`` until a terminal status: ``CambTaskTrigger`` for text-to-voice.

    :param camb_task_id: The CAMB task id to wait for.
    :param camb_conn_id: The Airflow connection id; the connection is read inside ``run()``.
    :param poll_interval: Seconds between polls.
    :param deadline: Epoch seconds after which the wait ends with a ``timeout`` event; None: see ``timeout``.
    :param wait_before_first_poll: Wait one interval (plus a random phase) before the first poll.
    :param end_from_trigger: End the Airflow task here on SUCCESS instead of resuming it on a worker.
    :param timeout: Without a ``deadline``, seconds from the deferral to the ``timeout`` event (``CambTaskTrigger``).
    :param created_at: When this provider created the task (epoch seconds): a 404 soon after is lag.
    :param deferred_at: Epoch seconds when the worker deferred (see ``CambTaskTrigger``).
    :param resume_margin: Least seconds from the deferral to an event that resumes on a worker.
    """

    def __init__(
        self,
        camb_task_id: str,
        camb_conn_id: str = CambHook.default_conn_name,
        poll_interval: float = 5.0,
        deadline: float | None = None,
        wait_before_first_poll: bool = True,
        end_from_trigger: bool = False,
        timeout: float | None = None,
        created_at: float | None = None,
        deferred_at: float | None = None,
        resume_margin: float | None = None,
    ) -> None:
        super().__init__(
            camb_task_id,
            camb_conn_id,
            poll_interval,
            deadline,
            wait_before_first_poll,
            kind=TEXT_TO_VOICE.name,
            end_from_trigger=end_from_trigger,
            timeout=timeout,
            created_at=created_at,
            deferred_at=deferred_at,
            resume_margin=resume_margin,
        )
