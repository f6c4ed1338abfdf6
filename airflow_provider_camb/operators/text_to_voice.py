"""Operators for CAMB.AI text-to-voice: create a voice design task, download its previews, keep one.

``TextToVoiceOperator`` starts a task (and can wait for it), ``TextToVoiceResultOperator`` streams the
generated previews into a folder or object storage, ``CambChooseVoiceOperator`` (Airflow 3.1+) lets a
person pick one by ear, ``CambCreateCustomVoiceOperator`` turns one preview into a permanent voice.
Every input is checked before anything is sent to CAMB.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_camb import _deprecated
from airflow_provider_camb._lineage import camb_run, camb_voice, stored_file
from airflow_provider_camb._rendered import rendered_value
from airflow_provider_camb._storage import ResultFiles, local_copy, media_extension, result_files
from airflow_provider_camb._task_memory import VOICE, CambCreate, TaskMemory
from airflow_provider_camb.api import parse_whole_number, url_host
from airflow_provider_camb.exceptions import CambInputError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.kinds import TEXT_TO_VOICE
from airflow_provider_camb.kinds.text_to_voice import CUSTOM_VOICE_FIELDS, custom_voice_request
from airflow_provider_camb.operators._base import CambOperator
from airflow_provider_camb.operators._voice_choice import kept_preview
from airflow_provider_camb.operators.camb_result import CambResultOperator
from airflow_provider_camb.operators.camb_task import CambTaskOperator

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_camb.operators._choose_voice import CambChooseVoiceOperator as CambChooseVoiceOperator


__all__ = ["CambCreateCustomVoiceOperator", "TextToVoiceOperator", "TextToVoiceResultOperator"]

_moved_from_0_1_0 = _deprecated.module_getattr(__name__)


def __getattr__(name: str) -> Any:
    """``CambChooseVoiceOperator``, imported on first use (before Airflow 3.1: ``CambAirflowVersionError``);
    the 0.1.0 names of this module, each with a warning once."""
    if name == "CambChooseVoiceOperator":
        from airflow_provider_camb.operators._choose_voice import CambChooseVoiceOperator

        return CambChooseVoiceOperator
    return _moved_from_0_1_0(name, depth=1)


def preview_file_name(run_id: int, index: int, extension: str) -> str:
    """The stable name of a downloaded preview: ``camb_run_<run_id>_preview_<index>.<ext>`` (index from 0)."""
    return f"camb_run_{run_id}_preview_{index}.{extension}"


class TextToVoiceOperator(CambTaskOperator):
    """Start a CAMB.AI text-to-voice task (design a voice from a description); return the CAMB task id.

    Input is checked before anything is sent: empty or whitespace-only text, a description CAMB would
    not process (under 100 characters or 18 words), non-strings and over-long values fail with
    ``CambInputError`` and no request. Waiting (``wait_for_completion``, ``deferrable``,
    ``end_from_trigger``, ``poll_interval``, ``timeout``) works as in every ``CambTaskOperator``.

    :param text: What the sample voices will say (templated).
    :param voice_description: The voice to design; CAMB needs 100+ characters and 18+ words (templated).
    :param check_description: Refuse descriptions CAMB would not process before sending (default True).
    """

    kind = TEXT_TO_VOICE
    template_fields: Sequence[str] = ("text", "voice_description", *CambTaskOperator.project_fields)
    template_fields_renderers: ClassVar[dict[str, str]] = {"text": "txt", "voice_description": "txt"}

    def __init__(self, *, text: str, voice_description: str, check_description: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keep_fields(locals(), self.kind.fields)


class TextToVoiceResultOperator(CambResultOperator):
    """Download every preview (generated sample voice) of a CAMB text-to-voice run into a folder.

    ``destination`` is a local folder or any object storage URI Airflow knows (``file://...``,
    ``s3://...``). Each preview is streamed in chunks (memory stays flat) to a temporary name in the
    same folder, and all are moved to ``camb_run_<run_id>_preview_<index>.<ext>`` only when every one
    is complete; on any failure the temporary files are removed, so no partial file, and no part of
    the run's previews, ever sits under a final name. A rerun
    writes the same names with the same bytes. The extension comes from the Content-Type (``wav``,
    ``mp3``, ``flac``, ``ogg``, ...), else from the link's path, else ``bin``.

    Returns ``[{"path", "bytes", "sha256", "content_type"}, ...]`` in CAMB's order. Preview links may
    be bearer links, so they appear nowhere (XCom, logs) beyond their host.

    See ``CambResultOperator`` for the parameters (``run_id``, ``destination``, ``destination_conn_id``).
    """

    def save(self, context: Context, run_id: int, folder: ObjectStoragePath) -> list[dict[str, Any]]:
        urls = self.hook.get_text_to_voice_result(run_id)
        self.log.info("CAMB run %s has %d previews; saving them to %s.", run_id, len(urls), folder)
        with result_files(folder) as files:  # every preview reaches its final name, or none does
            saved = [self._save(files, url, run_id, index) for index, url in enumerate(urls)]
        for index, (url, preview) in enumerate(zip(urls, saved, strict=True)):
            self.log.info(
                "Saved preview %d of CAMB run %s from %s to %s (%d bytes, %s, sha256 %s).",
                index,
                run_id,
                url_host(url),
                preview["path"],
                preview["bytes"],
                preview["content_type"],
                preview["sha256"],
            )
        self.record_result(context, self.hook.settings.base_url, TEXT_TO_VOICE, run_id, saved)
        return saved

    def _save(self, files: ResultFiles, url: str, run_id: int, index: int) -> dict[str, Any]:
        return save_preview(self.hook, files, url, f"camb_run_{run_id}_preview_{index}", self.max_bytes)


def save_preview(
    hook: CambHook, files: ResultFiles, url: str, stem: str, max_bytes: int | None = None
) -> dict[str, Any]:
    """Write one preview into ``files`` as ``<stem>.<ext>``; returns ``{"path", "bytes", "sha256", "content_type"}``."""
    final, preview = files.write(
        stem,
        lambda file: hook.download_link(url, file, what="a preview", max_bytes=max_bytes),
        lambda preview: f"{stem}.{media_extension(preview.content_type, url)}",
    )
    return {
        "path": str(final),
        "bytes": preview.bytes,
        "sha256": preview.sha256,
        "content_type": preview.content_type,
    }


class CambCreateCustomVoiceOperator(CambOperator):
    """Keep one preview as a permanent CAMB.AI custom voice; return the new ``voice_id``.

    ``preview`` picks the audio: a path or object storage URI, one entry of
    ``TextToVoiceResultOperator``'s XCom (a dict with ``path``), or an index into ``previews`` (that
    XCom list; a digit string from a template counts as an index when ``previews`` is given). A file
    in object storage is first copied to a local temporary file, removed afterwards. Or ``choice``
    (``choice=choose.output`` of a ``CambChooseVoiceOperator``) gives the preview, name, gender and
    description a person chose; when they chose "None of these" the task is skipped.

    The voice id is kept like a create operator's task id (README, "Retries and billing"): on Airflow 3.3+
    a retry returns the voice an earlier try created; a create that was sent but got no usable reply
    fails without retries, as does a retry before Airflow 3.3, unless ``retry_uncertain_create=True``.

    :param preview: The preview to keep: a path/URI, a dict with ``path``, or an index into ``previews`` (templated).
    :param voice_name: Name of the new voice (templated).
    :param gender: CAMB's gender code, an integer or digit string (templated).
    :param choice: Instead of ``preview``, ``voice_name``, ``gender`` and ``description``: the answer of a
        ``CambChooseVoiceOperator`` (templated).
    :param previews: The list returned by ``TextToVoiceResultOperator``, for an index ``preview`` (templated).
    :param run_id: The CAMB run the preview came from, if known (templated).
    :param age: Optional age of the voice, an integer or digit string (templated).
    :param description: Optional description of the voice (templated).
    :param language: Optional CAMB language id, an integer or digit string (templated).
    :param camb_conn_id: The Airflow connection of type ``camb``.
    :param preview_conn_id: The Airflow connection that reads a preview in object storage (e.g. an ``aws``
        connection for ``s3://``), as ``s3://conn_id@bucket/path`` would name it.
    :param retry_uncertain_create: Let Airflow's retries create a new voice when CAMB may have created one
        whose id is unknown (default False: fail without retries, which never pays twice).
    """

    template_fields: Sequence[str] = (
        "preview",
        "choice",
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
        preview: str | os.PathLike[str] | dict[str, Any] | int | None = None,
        voice_name: str | None = None,
        gender: int | str | None = None,
        choice: Any = None,
        previews: list[dict[str, Any]] | list[str] | str | None = None,
        run_id: int | str | None = None,
        age: int | str | None = None,
        description: str | None = None,
        language: int | str | None = None,
        camb_conn_id: str = CambHook.default_conn_name,
        preview_conn_id: str | None = None,
        retry_uncertain_create: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(camb_conn_id=camb_conn_id, **kwargs)
        if choice is not None and not (preview is voice_name is gender is description is None):
            raise CambInputError("Give either choice or preview, voice_name, gender and description, not both.")
        self.preview = preview
        self.choice = choice
        self.previews = previews
        self.voice_name = voice_name
        self.gender = gender
        self.run_id = run_id
        self.age = age
        self.description = description
        self.language = language
        self.preview_conn_id = preview_conn_id
        self.retry_uncertain_create = retry_uncertain_create

    def execute(self, context: Context) -> int:
        if self.choice is not None:
            chosen = kept_preview(self.choice)
            self.preview, self.voice_name, self.gender = chosen["file"], chosen["voice_name"], chosen["gender"]
            self.description = chosen["description"]
        request = custom_voice_request({name: getattr(self, name) for name in CUSTOM_VOICE_FIELDS})  # before any read
        voice_name = (request.form or {})["voice_name"]
        run_id = None if request.params is None else int(request.params["run_id"])
        location = self._chosen_location()
        memory = TaskMemory.of(context, self)
        create = CambCreate(VOICE, "CAMB custom voice", f"named {voice_name!r}")
        earlier = memory.recall(create)
        if earlier is not None:
            voice_id = int(str(earlier.camb_id))
            self.log.info(
                "Try %d returns CAMB custom voice %s, created by try %d: no new voice is created.",
                context["ti"].try_number,
                voice_id,
                earlier.try_number,
            )
        else:
            with local_copy(location, "preview", conn_id=self.preview_conn_id) as audio:
                self.log.info("Keeping %s as CAMB custom voice %r.", location, voice_name)
                voice_id = memory.start(create, lambda: self.hook.create_voice(request, audio))
        base_url = self.hook.settings.base_url
        kept_from = [stored_file(location)] + ([] if run_id is None else [camb_run(base_url, TEXT_TO_VOICE, run_id)])
        self.record_lineage(inputs=kept_from, outputs=[camb_voice(base_url, voice_id)])
        return voice_id

    def _chosen_location(self) -> str:
        preview: object = self.preview
        if self.previews is not None and (index := parse_whole_number(preview)) is not None:
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
    previews = rendered_value(previews)
    if not isinstance(previews, (list, tuple)):
        raise CambInputError(
            "An index preview needs previews: the list returned by TextToVoiceResultOperator, "
            f"got {str(previews)[:200]!r}."
        )
    return list(previews)
