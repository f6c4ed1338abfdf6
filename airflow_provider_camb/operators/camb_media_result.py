"""CambMediaResultOperator: save the one media file of a CAMB run (speech, sound), whole or not at all."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_camb._lineage import CambLineageMixin
from airflow_provider_camb._storage import destination_folder, media_extension, write_atomically
from airflow_provider_camb.api import DownloadedFile, check_run_id, media_result_request, url_host
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.kinds import kind_of

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


def media_file_name(media: str, run_id: int, extension: str) -> str:
    """The stable name of a run's media file: ``camb_<media>_run_<run_id>.<ext>`` (e.g. ``camb_speech_run_7.flac``)."""
    return f"camb_{media}_run_{run_id}.{extension}"


class CambMediaResultOperator(CambLineageMixin, BaseOperator):
    """Save the media result of a CAMB run to a folder or object storage; the base of each kind's result operator.

    With ``output_type="RAW_BYTES"`` (the default) the audio is streamed from the API host itself;
    with ``"FILE_URL"`` CAMB answers a bearer link, fetched without the API key and shown nowhere beyond
    its host. Either way the bytes go to a temporary name in the destination and are moved to
    ``camb_<media>_run_<run_id>.<ext>`` only when complete (the extension from the Content-Type); on any
    failure nothing stays behind. Returns ``{"path", "bytes", "sha256", "content_type"}``.

    :param run_id: The CAMB run id, e.g. the XCom of the waiting create operator or a ``CambTaskSensor`` (templated).
    :param destination: Folder or object storage URI to write the file to (templated).
    :param destination_conn_id: The Airflow connection that reaches the destination storage, if it needs one.
    :param output_type: ``RAW_BYTES`` (stream from the API) or ``FILE_URL`` (fetch CAMB's storage link).
    :param camb_conn_id: The Airflow connection of type ``camb``.
    """

    #: The CAMB task kind whose result this operator saves.
    kind: ClassVar[str]
    template_fields: Sequence[str] = ("run_id", "destination", "output_type")
    ui_color = "#dff5e6"

    def __init__(
        self,
        *,
        run_id: int | str,
        destination: str | os.PathLike[str],
        destination_conn_id: str | None = None,
        output_type: str = "RAW_BYTES",
        camb_conn_id: str = CambHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.output_type = output_type
        self.camb_conn_id = camb_conn_id

    @cached_property
    def hook(self) -> CambHook:
        return CambHook(self.camb_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        kind = kind_of(self.kind)
        run_id = check_run_id(self.run_id)
        media_result_request(kind, run_id, self.output_type)  # refuses a bad output_type before anything is sent
        folder = destination_folder(self.destination, conn_id=self.destination_conn_id)
        fetch: Callable[[IO[bytes]], DownloadedFile]
        if self.output_type == "FILE_URL":
            url = self.hook.get_result_link(kind, run_id)
            source = url_host(url)

            def fetch(file: IO[bytes]) -> DownloadedFile:
                return self.hook.download_link(url, file, what=f"the {kind.media}")
        else:
            url, source = "", "the CAMB API"

            def fetch(file: IO[bytes]) -> DownloadedFile:
                return self.hook.download_result(kind, run_id, file)

        final, saved = write_atomically(
            folder,
            f"camb_{kind.media}_run_{run_id}",
            fetch,
            lambda saved: media_file_name(kind.media, run_id, media_extension(saved.content_type, url)),
        )
        self.log.info(
            "Saved the %s of CAMB %s run %s from %s to %s (%d bytes, %s, sha256 %s).",
            kind.media,
            kind.label,
            run_id,
            source,
            final,
            saved.bytes,
            saved.content_type,
            saved.sha256,
        )
        result = {"path": str(final), "bytes": saved.bytes, "sha256": saved.sha256, "content_type": saved.content_type}
        self.record_result(context, self.hook.settings.base_url, kind, run_id, [result])
        return result
