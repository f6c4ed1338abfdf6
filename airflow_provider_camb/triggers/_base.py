"""CambTrigger: the base of the CAMB triggers; its row is the trigger's own arguments, as it holds them."""

from __future__ import annotations

import inspect
from typing import Any

from airflow.triggers.base import BaseTrigger


class CambTrigger(BaseTrigger):
    """A trigger that keeps every argument of its ``__init__`` as the attribute of the same name.

    ``serialize()`` writes those attributes, and only those, so a row always loads with the class's
    own arguments (the row of a subclass that fixes an argument, as ``TextToVoiceTrigger`` fixes
    ``kind``, leaves it out). They are plain ids and numbers: the row is stored in Airflow's database,
    so an argument is never a secret (the connection is read inside ``run()``).
    """

    def serialize(self) -> tuple[str, dict[str, Any]]:
        names = [name for name in inspect.signature(type(self).__init__).parameters if name != "self"]
        return f"{type(self).__module__}.{type(self).__qualname__}", {name: getattr(self, name) for name in names}
