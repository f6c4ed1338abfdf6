"""Every 0.1.0 name that has a new one, in one place: each keeps working and warns once.

The first use of an old name raises a ``DeprecationWarning`` that names the new one; later uses are
silent. The modules that held them in 0.1.0 serve them through ``module_getattr`` (PEP 562), so
``from airflow_provider_camb.api import TextToVoiceStatus`` still works. Names the pre-releases of 0.2.0
had (``triggers.camb_task.status_from_event``, ...) are served the same way.

Not here, and never warning: the 0.1.0 public classes ``TextToVoiceOperator``,
``TextToVoiceResultOperator``, ``TextToVoiceStatusSensor`` and ``TextToVoiceTrigger``. Users' DAGs and
the trigger rows in their databases name them.
"""

from __future__ import annotations

import importlib
import os
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Any, Protocol, Unpack

if TYPE_CHECKING:
    from airflow_provider_camb.api import ApiRequest, CambTaskStatus, DownloadedFile
    from airflow_provider_camb.kinds.text_to_voice import TextToVoiceOptions

_PACKAGE = "airflow_provider_camb"

#: The statuses events had for our own outcomes before 0.2.0.
EVENT_TIMEOUT = "timeout"
EVENT_ERROR = "error"

#: Per module of 0.1.0 (or of a pre-release): old name -> where the new one lives ("module:name"), and,
#: when the new way is not simply that name, what to say instead.
MOVED: Mapping[str, Mapping[str, tuple[str, str | None]]] = {
    "api": {
        "TextToVoiceStatus": ("api:CambTaskStatus", None),
        "DownloadedPreview": ("api:DownloadedFile", None),
        "CambSettings": ("settings:CambSettings", None),
        "settings_from": ("settings:settings_from", None),
        "base_url_from": ("settings:base_url_from", None),
        "MIN_DESCRIPTION_CHARS": ("kinds.text_to_voice:MIN_DESCRIPTION_CHARS", None),
        "MIN_DESCRIPTION_WORDS": ("kinds.text_to_voice:MIN_DESCRIPTION_WORDS", None),
        "MAX_INPUT_CHARS": ("kinds._fields:MAX_INPUT_CHARS", None),
        "create_text_to_voice_request": (
            "_deprecated:create_text_to_voice_request",
            "kinds.TEXT_TO_VOICE.create_request(fields)",
        ),
        "parse_previews": ("_deprecated:parse_previews", "kinds.text_to_voice.parse_previews(body, kind, run_id)"),
        "parse_voice_id": ("kinds.text_to_voice:parse_voice_id", None),
    },
    "_storage": {"AUDIO_EXTENSIONS": ("_storage:MEDIA_EXTENSIONS", None)},
    "_waiting": {"CambWaitTimeoutError": ("exceptions:CambWaitTimeoutError", None)},
    "operators.text_to_voice": {
        "AUDIO_EXTENSIONS": ("_storage:MEDIA_EXTENSIONS", None),
        "preview_extension": ("_storage:media_extension", None),
        "CambWaitTimeoutError": ("exceptions:CambWaitTimeoutError", None),
    },
    **{
        module: {
            "EVENT_TIMEOUT": ("_deprecated:EVENT_TIMEOUT", 'the outcome "deadline" (events.DEADLINE)'),
            "EVENT_ERROR": ("_deprecated:EVENT_ERROR", 'the outcome "error" (events.ERROR)'),
            "POLL_SLOT": ("polling:POLL_SLOT", None),
            "status_from_event": ("_deprecated:status_from_event", "events.decode_event"),
            "deadline_message": ("events:deadline_message", None),
        }
        for module in ("triggers.text_to_voice", "triggers.camb_task")
    },
}

_warned: set[str] = set()
_lock = threading.Lock()


def warn_once(old: str, new: str, *, depth: int = 0) -> None:
    """A ``DeprecationWarning`` naming the new name, the first time ``old`` is used in this process.

    It points at the caller of the function that called this one, ``depth`` frames further out.
    """
    with _lock:
        if old in _warned:
            return
        _warned.add(old)
    warnings.warn(f"{old} is deprecated since 0.2.0: use {new}.", DeprecationWarning, stacklevel=3 + depth)


def module_getattr(module: str) -> Callable[..., Any]:
    """The ``__getattr__`` of a module whose 0.1.0 names moved: serves each with a warning, once.

    A module's own ``__getattr__`` may call it as ``(name, depth=1)``, so the warning still points at the user.
    """
    moved = MOVED[module.removeprefix(f"{_PACKAGE}.")]

    def __getattr__(name: str, depth: int = 0) -> Any:
        if name not in moved:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        where, instead = moved[name]
        value_module, _, attribute = where.partition(":")
        warn_once(f"{module}.{name}", f"{_PACKAGE}.{instead or f'{value_module}.{attribute}'}", depth=depth)
        return getattr(importlib.import_module(f"{_PACKAGE}.{value_module}"), attribute)

    return __getattr__


def status_from_event(event: dict[str, Any]) -> CambTaskStatus:
    """A trigger event as a status, as before 0.2.0: the typed error of an ``error`` event is raised, and a
    ``deadline`` event comes back as a status ``"timeout"``. Use ``events.decode_event``.
    """
    from airflow_provider_camb import events
    from airflow_provider_camb.api import CambTaskStatus
    from airflow_provider_camb.kinds import kind_of

    decoded = events.decode_event(event)
    if decoded["outcome"] == events.ERROR:
        raise events.error_of(decoded)
    if decoded["outcome"] == events.DEADLINE:
        return CambTaskStatus(
            decoded["task_id"], EVENT_TIMEOUT, message=decoded["message"], kind=kind_of(decoded["kind"])
        )
    return events.status_of(decoded)


def create_text_to_voice_request(
    text: object, voice_description: object, **optional: Unpack[TextToVoiceOptions]
) -> ApiRequest:
    """``POST /text-to-voice`` as 0.1.0 built it. Use ``kinds.TEXT_TO_VOICE.create_request(fields)``."""
    from airflow_provider_camb.kinds import TEXT_TO_VOICE

    return TEXT_TO_VOICE.create_request({"text": text, "voice_description": voice_description, **optional})


def parse_previews(body: Any, run_id: int) -> list[str]:
    """The preview URLs of a result reply, as 0.1.0 read them. Use ``kinds.text_to_voice.parse_previews``."""
    from airflow_provider_camb.kinds import TEXT_TO_VOICE
    from airflow_provider_camb.kinds.text_to_voice import parse_previews as parse

    return parse(body, TEXT_TO_VOICE, run_id)


class _Hook(Protocol):
    def get_task_status(self, kind: str, task_id: str) -> CambTaskStatus: ...

    async def aget_task_status(
        self, kind: str, task_id: str, *, retry_until: float | None = None
    ) -> CambTaskStatus: ...

    def download_link(
        self, url: str, target: str | os.PathLike[str] | IO[bytes], *, what: str = ..., max_bytes: int | None = ...
    ) -> DownloadedFile: ...


class HookMethods:
    """The 0.1.0 methods of ``CambHook`` that have generic ones."""

    def get_text_to_voice_status(self: _Hook, task_id: str) -> CambTaskStatus:
        """Deprecated: ``get_task_status("text-to-voice", task_id)``."""
        warn_once("CambHook.get_text_to_voice_status", 'CambHook.get_task_status("text-to-voice", task_id)')
        return self.get_task_status("text-to-voice", task_id)

    async def aget_text_to_voice_status(
        self: _Hook, task_id: str, *, retry_until: float | None = None
    ) -> CambTaskStatus:
        """Deprecated: ``aget_task_status("text-to-voice", task_id)``."""
        warn_once("CambHook.aget_text_to_voice_status", 'CambHook.aget_task_status("text-to-voice", task_id)')
        return await self.aget_task_status("text-to-voice", task_id, retry_until=retry_until)

    def download_preview(
        self: _Hook, url: str, target: str | os.PathLike[str] | IO[bytes], *, max_bytes: int | None = None
    ) -> DownloadedFile:
        """Deprecated: ``download_link(url, target, what="a preview")``."""
        warn_once("CambHook.download_preview", 'CambHook.download_link(url, target, what="a preview")')
        return self.download_link(url, target, what="a preview", max_bytes=max_bytes)
