"""Operators for CAMB.AI text-to-voice: create a voice design task, download its previews, keep one.

``TextToVoiceOperator`` starts a task (and can wait for it), ``TextToVoiceResultOperator`` streams the
generated previews into a folder or object storage, ``CambCreateCustomVoiceOperator`` turns one preview
into a permanent voice. Every input is checked before anything is sent to CAMB.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Sequence
from contextlib import suppress
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperator, ObjectStoragePath, conf

from airflow_provider_camb._storage import (
    destination_folder,
    local_copy,
    media_extension,
    write_atomically,
)
from airflow_provider_camb._waiting import (
    CambWaitTimeoutError,
    check_once,
    finish,
    poll_until_terminal,
    seconds,
    status_after_deferral,
    trigger_for,
)
from airflow_provider_camb.api import check_run_id, url_host
from airflow_provider_camb.exceptions import CambInputError
from airflow_provider_camb.hooks.camb import CambHook

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = [
    "CambCreateCustomVoiceOperator",
    "CambWaitTimeoutError",
    "TextToVoiceOperator",
    "TextToVoiceResultOperator",
]


def preview_extension(content_type: str | None, url: str) -> str:
    """The file extension of a preview: from its Content-Type, else from its URL's path, else ``bin``."""
    return media_extension(content_type, url)


def preview_file_name(run_id: int, index: int, extension: str) -> str:
    """The stable name of a downloaded preview: ``camb_run_<run_id>_preview_<index>.<ext>`` (index from 0)."""
    return f"camb_run_{run_id}_preview_{index}.{extension}"


def _digits(value: object) -> int | None:
    """The number a digit string (what a template renders) spells; None for anything else."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def _whole_number(name: str, value: object, *, optional: bool) -> int | None:
    """An integer field; digit strings (what templates render) are accepted."""
    if value is None and optional:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if (number := _digits(value)) is not None:
        return number
    raise CambInputError(f"{name} must be a whole number, got {value!r}.")


class TextToVoiceOperator(BaseOperator):
    """Start a CAMB.AI text-to-voice task (design a voice from a description); return the CAMB task id.

    Input is checked before anything is sent: empty or whitespace-only text, a description CAMB would
    not process (under 100 characters or 18 words), non-strings and over-long values fail with
    ``CambInputError`` and no request. The CAMB task id is returned and also pushed as XCom ``task_id``.

    With ``wait_for_completion=True`` the operator also waits for the task and returns its ``run_id``
    instead (also pushed as XCom ``run_id``), exactly like ``TextToVoiceStatusSensor``: deferrable, it
    checks once, finishes at once if the task is already done, else waits in the triggerer; otherwise it
    polls from the worker. ERROR or TIMEOUT raise ``CambTaskFailedError`` (Airflow's retries apply);
    PAYMENT_REQUIRED fails without retries; past ``timeout`` a ``CambWaitTimeoutError`` fails without
    retries. Resuming after the trigger never creates the task again.

    :param text: What the sample voices will say (templated).
    :param voice_description: The voice to design; CAMB needs 100+ characters and 18+ words (templated).
    :param camb_conn_id: The Airflow connection of type ``camb``.
    :param project_name: Optional CAMB project name (templated).
    :param project_description: Optional CAMB project description (templated).
    :param folder_id: Optional CAMB folder id, an integer or digit string (templated).
    :param check_description: Refuse descriptions CAMB would not process before sending (default True).
    :param wait_for_completion: Wait until the task ends and return its run id (default False).
    :param poll_interval: Seconds between status checks while waiting.
    :param timeout: Longest wait in seconds (or a ``timedelta``), default one hour.
    :param deferrable: Wait in the triggerer (default: ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("text", "voice_description", "project_name", "project_description", "folder_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"text": "txt", "voice_description": "txt"}
    ui_color = "#d6e4ff"

    def __init__(
        self,
        *,
        text: str,
        voice_description: str,
        camb_conn_id: str = CambHook.default_conn_name,
        project_name: str | None = None,
        project_description: str | None = None,
        folder_id: int | str | None = None,
        check_description: bool = True,
        wait_for_completion: bool = False,
        poll_interval: float = 5.0,
        timeout: float | timedelta = 3600.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.text = text
        self.voice_description = voice_description
        self.camb_conn_id = camb_conn_id
        self.project_name = project_name
        self.project_description = project_description
        self.folder_id = folder_id
        self.check_description = check_description
        self.wait_for_completion = wait_for_completion
        self.poll_interval = seconds(poll_interval, "poll_interval")
        self.timeout = seconds(timeout, "timeout")
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> CambHook:
        return CambHook(self.camb_conn_id)

    def execute(self, context: Context) -> Any:
        folder_id = self.folder_id
        if (number := _digits(folder_id)) is not None:
            folder_id = number  # a rendered template; anything else that is not an int is refused by the hook
        camb_task_id = self.hook.create_text_to_voice(
            self.text,
            self.voice_description,
            project_name=self.project_name,
            project_description=self.project_description,
            folder_id=folder_id,  # type: ignore[arg-type]  # checked by the hook before sending
            check_description=self.check_description,
        )
        context["ti"].xcom_push(key="task_id", value=camb_task_id)
        if not self.wait_for_completion:
            return camb_task_id
        if self.deferrable:
            status = check_once(self.hook, camb_task_id, self.log)
            if status is not None and status.is_terminal:  # already done: finish now, never defer
                return finish(status, context)
            self.defer(
                trigger=trigger_for(camb_task_id, self.camb_conn_id, self.poll_interval, self.timeout),
                method_name="execute_complete",
                timeout=self.execution_timeout,
            )
        status = poll_until_terminal(
            self.hook,
            camb_task_id,
            poll_interval=self.poll_interval,
            timeout=self.timeout,
            waiter=type(self).__name__,
            log=self.log,
        )
        return finish(status, context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> int:
        """Resume after the trigger fired: the same outcome as when the task was already done; no new task."""
        status = status_after_deferral(event, waiter=type(self).__name__, timeout=self.timeout)
        self.log.info("CAMB task %s ended with %s after %s polls.", status.task_id, status.status, event.get("polls"))
        return finish(status, context)


class TextToVoiceResultOperator(BaseOperator):
    """Download every preview (generated sample voice) of a CAMB text-to-voice run into a folder.

    ``destination`` is a local folder or any object storage URI Airflow knows (``file://...``,
    ``s3://...``). Each preview is streamed in chunks (memory stays flat) to a temporary name in the
    same folder and moved to ``camb_run_<run_id>_preview_<index>.<ext>`` only when complete; on any
    failure the temporary file is removed, so no partial file ever sits under the final name. A rerun
    writes the same names with the same bytes. The extension comes from the Content-Type (``wav``,
    ``mp3``, ``flac``, ``ogg``, ...), else from the link's path, else ``bin``.

    Returns ``[{"path", "bytes", "sha256", "content_type"}, ...]`` in CAMB's order. Preview links may
    be bearer links, so they appear nowhere (XCom, logs) beyond their host.

    :param run_id: The CAMB run id, e.g. the XCom of ``TextToVoiceStatusSensor`` (templated).
    :param destination: Folder or object storage URI to write the previews to (templated).
    :param camb_conn_id: The Airflow connection of type ``camb``.
    :param destination_conn_id: The Airflow connection that writes to ``destination`` (e.g. an ``aws``
        connection for ``s3://``), as ``s3://conn_id@bucket/path`` would name it. Without either, the
        storage library's own default credentials and endpoint apply.
    """

    template_fields: Sequence[str] = ("run_id", "destination")
    ui_color = "#dff5e6"

    def __init__(
        self,
        *,
        run_id: int | str,
        destination: str | os.PathLike[str],
        camb_conn_id: str = CambHook.default_conn_name,
        destination_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.destination = destination
        self.camb_conn_id = camb_conn_id
        self.destination_conn_id = destination_conn_id

    @cached_property
    def hook(self) -> CambHook:
        return CambHook(self.camb_conn_id)

    def execute(self, context: Context) -> list[dict[str, Any]]:
        run_id = check_run_id(self.run_id)
        folder = destination_folder(self.destination, conn_id=self.destination_conn_id)
        urls = self.hook.get_text_to_voice_result(run_id)
        self.log.info("CAMB run %s has %d previews; saving them to %s.", run_id, len(urls), folder)
        return [self._save(url, folder, run_id, index) for index, url in enumerate(urls)]

    def _save(self, url: str, folder: ObjectStoragePath, run_id: int, index: int) -> dict[str, Any]:
        final, preview = write_atomically(
            folder,
            f"camb_run_{run_id}_preview_{index}",
            lambda file: self.hook.download_preview(url, file),
            lambda preview: preview_file_name(run_id, index, preview_extension(preview.content_type, url)),
        )
        self.log.info(
            "Saved preview %d of CAMB run %s from %s to %s (%d bytes, %s, sha256 %s).",
            index,
            run_id,
            url_host(url),
            final,
            preview.bytes,
            preview.content_type,
            preview.sha256,
        )
        return {
            "path": str(final),
            "bytes": preview.bytes,
            "sha256": preview.sha256,
            "content_type": preview.content_type,
        }


class CambCreateCustomVoiceOperator(BaseOperator):
    """Keep one preview as a permanent CAMB.AI custom voice; return the new ``voice_id``.

    ``preview`` picks the audio: a path or object storage URI, one entry of
    ``TextToVoiceResultOperator``'s XCom (a dict with ``path``), or an index into ``previews`` (that
    XCom list; a digit string from a template counts as an index when ``previews`` is given). A file
    in object storage is first copied to a local temporary file, removed afterwards.

    :param preview: The preview to keep: a path/URI, a dict with ``path``, or an index into ``previews`` (templated).
    :param voice_name: Name of the new voice (templated).
    :param gender: CAMB's gender code, an integer or digit string (templated).
    :param previews: The list returned by ``TextToVoiceResultOperator``, for an index ``preview`` (templated).
    :param run_id: The CAMB run the preview came from, if known (templated).
    :param age: Optional age of the voice, an integer or digit string (templated).
    :param description: Optional description of the voice (templated).
    :param language: Optional CAMB language id, an integer or digit string (templated).
    :param camb_conn_id: The Airflow connection of type ``camb``.
    :param preview_conn_id: The Airflow connection that reads a preview in object storage (e.g. an ``aws``
        connection for ``s3://``), as ``s3://conn_id@bucket/path`` would name it.
    """

    template_fields: Sequence[str] = (
        "preview",
        "previews",
        "voice_name",
        "gender",
        "run_id",
        "age",
        "description",
        "language",
    )
    ui_color = "#fff0d6"

    def __init__(
        self,
        *,
        preview: str | os.PathLike[str] | dict[str, Any] | int,
        voice_name: str,
        gender: int | str,
        previews: list[dict[str, Any]] | list[str] | str | None = None,
        run_id: int | str | None = None,
        age: int | str | None = None,
        description: str | None = None,
        language: int | str | None = None,
        camb_conn_id: str = CambHook.default_conn_name,
        preview_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.preview = preview
        self.previews = previews
        self.voice_name = voice_name
        self.gender = gender
        self.run_id = run_id
        self.age = age
        self.description = description
        self.language = language
        self.camb_conn_id = camb_conn_id
        self.preview_conn_id = preview_conn_id

    @cached_property
    def hook(self) -> CambHook:
        return CambHook(self.camb_conn_id)

    def execute(self, context: Context) -> int:
        if not isinstance(self.voice_name, str) or not self.voice_name.strip():
            raise CambInputError(f"voice_name must be a non-empty string, got {self.voice_name!r}.")
        if self.description is not None and not isinstance(self.description, str):
            raise CambInputError(f"description must be a string, got {type(self.description).__name__}.")
        gender = _whole_number("gender", self.gender, optional=False)
        assert gender is not None
        age = _whole_number("age", self.age, optional=True)
        language = _whole_number("language", self.language, optional=True)
        run_id = None if self.run_id is None else check_run_id(self.run_id)
        location = self._chosen_location()
        with local_copy(location, "preview", conn_id=self.preview_conn_id) as audio:
            self.log.info("Keeping %s as CAMB custom voice %r.", location, self.voice_name)
            return self.hook.create_custom_voice(
                audio,
                self.voice_name,
                gender,
                run_id=run_id,
                age=age,
                description=self.description,
                language=language,
            )

    def _chosen_location(self) -> str:
        preview: object = self.preview
        if self.previews is not None and (index := _digits(preview)) is not None:
            preview = index  # an index rendered by a template
        if isinstance(preview, int) and not isinstance(preview, bool):
            previews = _preview_list(self.previews)
            if not 0 <= preview < len(previews):
                raise CambInputError(
                    f"preview index {preview} is out of range: previews holds {len(previews)} entries."
                )
            preview = previews[preview]
        if isinstance(preview, dict):
            preview = preview.get("path")
            if not isinstance(preview, str):
                raise CambInputError(f"A preview dict needs a 'path' string, got {self.preview!r}.")
        if isinstance(preview, os.PathLike):
            preview = os.fspath(preview)
        if not isinstance(preview, str) or not preview.strip():
            raise CambInputError(
                "preview must be a path, a dict from TextToVoiceResultOperator or an index into previews, "
                f"got {self.preview!r}."
            )
        return preview


def _preview_list(previews: object) -> list[Any]:
    """The ``previews`` list; a list rendered to text by a template is parsed back (JSON or a Python literal)."""
    if isinstance(previews, str):
        text = previews
        try:
            previews = json.loads(text)
        except ValueError:
            with suppress(ValueError, SyntaxError, MemoryError, RecursionError):
                previews = ast.literal_eval(text)
    if not isinstance(previews, (list, tuple)):
        raise CambInputError(
            "An index preview needs previews: the list returned by TextToVoiceResultOperator, "
            f"got {str(previews)[:200]!r}."
        )
    return list(previews)
