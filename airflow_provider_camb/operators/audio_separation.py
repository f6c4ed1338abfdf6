"""Operators for CAMB.AI audio separation: split a media file into voice and background, then save both stems."""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_camb._storage import ResultFiles, media_extension, result_files
from airflow_provider_camb.api import DownloadedFile, url_host
from airflow_provider_camb.kinds.audio_separation import AUDIO_SEPARATION, SeparatedAudio
from airflow_provider_camb.operators.camb_media_task import CambMediaTaskOperator
from airflow_provider_camb.operators.camb_result import CambResultOperator
from airflow_provider_camb.operators.camb_task import CambTaskOperator

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_camb.hooks.camb import CambHook

__all__ = ["CambAudioSeparationOperator", "CambAudioSeparationResultOperator"]


class CambAudioSeparationOperator(CambMediaTaskOperator):
    """Start a CAMB.AI audio separation task (``POST /audio-separation``); return the task id, or the run id
    when waiting. ``media_file`` (a local path or object storage URI) is uploaded; it is checked to exist
    and to fit ``max_bytes`` before anything is sent (see ``CambMediaTaskOperator``).
    """

    kind = AUDIO_SEPARATION
    template_fields: Sequence[str] = ("media_file", *CambTaskOperator.project_fields)
    ui_color = "#e3dcf5"


class CambAudioSeparationResultOperator(CambResultOperator):
    """Save both stems of a CAMB audio separation run: ``GET /audio-separation-result/{run_id}``.

    Downloads the voice and the background from CAMB's storage links (bearer links: fetched without the
    API key, by the link policy, shown nowhere beyond their host) as
    ``camb_stems_run_<run_id>_{foreground,background}.<ext>``; both reach their final names, or neither.
    Returns ``{"foreground": file, "background": file}``, each ``{"path", "bytes", "sha256", "content_type"}``.
    See ``CambResultOperator`` for the parameters (``max_bytes`` applies to each stem).
    """

    kind = AUDIO_SEPARATION

    def save(self, context: Context, run_id: int, folder: ObjectStoragePath) -> dict[str, dict[str, Any]]:
        stems: SeparatedAudio = self.hook.get_result(AUDIO_SEPARATION, run_id)
        saved = save_stems(self.hook, folder, f"camb_stems_run_{run_id}", stems, self.max_bytes)
        for stem, file in saved.items():
            host = url_host(getattr(stems, f"{stem}_url"))
            self.log.info(
                "Downloaded the %s stem from %s (%d bytes, %s).", stem, host, file["bytes"], file["content_type"]
            )
        self.record_result(context, self.hook.settings.base_url, AUDIO_SEPARATION, run_id, list(saved.values()))
        return saved


def save_stems(
    hook: CambHook, folder: ObjectStoragePath, prefix: str, stems: SeparatedAudio, max_bytes: int | None
) -> dict[str, dict[str, Any]]:
    """Write both stems of a run into ``folder`` as ``<prefix>_{foreground,background}.<ext>``, both or neither;
    returns ``{stem: {"path", "bytes", "sha256", "content_type"}}``."""
    links = {"foreground": stems.foreground_url, "background": stems.background_url}
    with result_files(folder) as files:  # both stems reach their final names, or neither does
        return {stem: _save_stem(hook, files, f"{prefix}_{stem}", stem, url, max_bytes) for stem, url in links.items()}


def _save_stem(
    hook: CambHook, files: ResultFiles, name: str, stem: str, url: str, max_bytes: int | None
) -> dict[str, Any]:
    def fetch(target: IO[bytes]) -> DownloadedFile:
        return hook.download_link(url, target, what=f"the {stem} stem", max_bytes=max_bytes)

    final, file = files.write(name, fetch, lambda file: f"{name}.{media_extension(file.content_type, url)}")
    return {"path": str(final), "bytes": file.bytes, "sha256": file.sha256, "content_type": file.content_type}
