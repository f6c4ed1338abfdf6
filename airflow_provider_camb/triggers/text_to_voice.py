"""TextToVoiceTrigger: the 0.1.0 name of the wait for a text-to-voice task; ``CambTaskTrigger`` does the work.

Trigger rows that 0.1.0 wrote name this class with the kwargs ``camb_task_id``, ``camb_conn_id``,
``poll_interval``, ``deadline`` and ``wait_before_first_poll``; they load and finish unchanged.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from airflow_provider_camb import _deprecated
from airflow_provider_camb.kinds import TEXT_TO_VOICE
from airflow_provider_camb.triggers.camb_task import CambTaskTrigger

__all__ = ["TextToVoiceTrigger"]

if not TYPE_CHECKING:  # the 0.1.0 names, each with a warning once (type checkers see only the new ones)
    __getattr__ = _deprecated.module_getattr(__name__)

_WAIT = inspect.signature(CambTaskTrigger.__init__)


class TextToVoiceTrigger(CambTaskTrigger):
    """Poll ``GET /text-to-voice/{task_id}`` until a terminal status: ``CambTaskTrigger`` for text-to-voice.

    It takes the arguments of ``CambTaskTrigger`` but ``kind``, which it fixes; its signature says so, and
    ``serialize()`` writes the arguments of the signature: its rows hold no kind, as 0.1.0's did.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, kind=TEXT_TO_VOICE.name, **kwargs)

    __init__.__signature__ = _WAIT.replace(  # type: ignore[attr-defined]
        parameters=[parameter for name, parameter in _WAIT.parameters.items() if name != "kind"]
    )
