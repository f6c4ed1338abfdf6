"""TextToVoiceStatusSensor: ``CambTaskSensor`` for text-to-voice, under its 0.1.0 name and parameters."""

from __future__ import annotations

from typing import Any

from airflow_provider_camb.kinds import TEXT_TO_VOICE
from airflow_provider_camb.sensors.camb_task import CambTaskSensor


class TextToVoiceStatusSensor(CambTaskSensor):
    """Wait until a CAMB text-to-voice task finishes; return its ``run_id`` (also pushed as XCom ``run_id``).

    ``CambTaskSensor`` with ``kind="text-to-voice"``; it takes every other parameter of that sensor.

    :param camb_task_id: The CAMB task id (templated), e.g. the XCom of ``TextToVoiceOperator``.
    """

    def __init__(self, *, camb_task_id: str, **kwargs: Any) -> None:
        super().__init__(kind=TEXT_TO_VOICE, camb_task_id=camb_task_id, **kwargs)
