"""CambMediaResultOperator: save the one media file of a CAMB run (speech, sound), whole or not at all."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_camb._storage import media_extension, write_atomically
from airflow_provider_camb.api import DownloadedFile, check_output_type, url_host
from airflow_provider_camb.kinds import CambKind
from airflow_provider_camb.operators.camb_result import CambResultOperator

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


def media_file_name(media: str, run_id: int, extension: str) -> str:
    """The stable name of a run's media file: ``camb_<media>_run_<run_id>.<ext>`` (e.g. ``camb_speech_run_7.flac``)."""
    return f"camb_{media}_run_{run_id}.{extension}"


class CambMediaResultOperator(CambResultOperator):
    """Save the media result of a CAMB run to a folder or object storage; the base of each kind's result operator.

    With ``output_type="RAW_BYTES"`` (the default) the audio is streamed from the API host itself;
    with ``"FILE_URL"`` CAMB answers a bearer link, fetched without the API key and shown nowhere beyond
    its host. Either way the bytes go to a temporary name in the destination and are moved to
    ``camb_<media>_run_<run_id>.<ext>`` only when complete (the extension from the Content-Type); on any
    failure nothing stays behind. Returns ``{"path", "bytes", "sha256", "content_type"}``.

    :param output_type: ``RAW_BYTES`` (stream from the API) or ``FILE_URL`` (fetch CAMB's storage link).

    See ``CambResultOperator`` for the other parameters.
    """

    #: The CAMB task kind whose result this operator saves.
    kind: ClassVar[CambKind]
    template_fields: Sequence[str] = (*CambResultOperator.template_fields, "output_type")

    def __init__(self, *, output_type: str = "RAW_BYTES", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.output_type = output_type

    def check_input(self) -> None:
        check_output_type(self.kind, self.output_type)

    def save(self, context: Context, run_id: int, folder: ObjectStoragePath) -> dict[str, Any]:
        kind = self.kind
        fetch: Callable[[IO[bytes]], DownloadedFile]
        if self.output_type == "FILE_URL":
            url = self.hook.get_result_link(kind, run_id)
            source = url_host(url)

            def fetch(file: IO[bytes]) -> DownloadedFile:
                return self.hook.download_link(url, file, what=f"the {kind.media}", max_bytes=self.max_bytes)
        else:
            url, source = "", "the CAMB API"

            def fetch(file: IO[bytes]) -> DownloadedFile:
                return self.hook.download_result(kind, run_id, file, max_bytes=self.max_bytes)

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
