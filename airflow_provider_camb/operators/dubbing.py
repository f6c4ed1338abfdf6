"""Operators for CAMB.AI dubbing: dub a video or audio into other languages, then save every dubbed output."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_camb._storage import ResultFiles, media_extension, result_files
from airflow_provider_camb._task_memory import look_for
from airflow_provider_camb.api import DownloadedFile, url_host
from airflow_provider_camb.exceptions import CambResponseError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.kinds import DUB
from airflow_provider_camb.kinds.dub import DubbedOutput
from airflow_provider_camb.operators.camb_result import CambResultOperator
from airflow_provider_camb.operators.camb_task import CambTaskOperator

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = ["CambDubbingOperator", "CambDubbingResultOperator"]

#: The key of the one output when CAMB answers a single result object rather than a map by language.
SINGLE_RESULT = "default"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class CambDubbingOperator(CambTaskOperator):
    """Start a CAMB.AI dubbing task (``POST /dub``); return the CAMB task id, or the run id when waiting.

    Languages are CAMB language ids (integers, digit strings pass) or locale tags (``"fr-fr"``). Input is
    checked before anything is sent: ``video_url`` must be an http(s) URL, every language valid, no target
    twice, the optional fields of the documented types. Waiting works as in every ``CambTaskOperator``.

    :param video_url: A public URL of the video or audio to dub (templated).
    :param source_language: The language spoken in it (templated).
    :param target_languages: One language or a list of languages to dub into (templated).
    :param selected_audio_tracks: Optional list of audio track numbers to dub.
    :param add_output_as_an_audio_track: Optionally add the dub as an extra audio track of the video.
    :param chosen_dictionaries: Optional list of CAMB dictionary ids.
    :param ai_optimization: Optionally let CAMB optimise the translation.
    :param transcription_mode: Optional ``"fast"`` or ``"slow"`` (templated).
    :param source_transcript: Optional source-language SRT input (CAMB's object).
    :param target_transcripts: Optional list of translated SRT inputs, one per target language.
    """

    kind = DUB
    template_fields: Sequence[str] = (
        "video_url",
        "source_language",
        "target_languages",
        "transcription_mode",
        *CambTaskOperator.project_fields,
    )
    video_url: str

    def __init__(
        self,
        *,
        video_url: str,
        source_language: int | str,
        target_languages: int | str | list[int | str],
        selected_audio_tracks: list[int] | None = None,
        add_output_as_an_audio_track: bool | None = None,
        chosen_dictionaries: list[int] | None = None,
        ai_optimization: bool | None = None,
        transcription_mode: str | None = None,
        source_transcript: dict[str, Any] | None = None,
        target_transcripts: list[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.keep_fields(locals(), self.kind.fields)

    def look_for(self) -> str:
        """The project and the media's host (``video_url`` may be a bearer link: never more than its host)."""
        try:
            media = f"dubbing media from {url_host(self.video_url)}" if isinstance(self.video_url, str) else None
        except ValueError:  # not a URL: refused by the create's input check
            media = None
        return look_for(self.project_name, media)


class CambDubbingResultOperator(CambResultOperator):
    """Save every dubbed output of a CAMB dubbing run (``GET /dub-result/{run_id}``) to a folder or object storage.

    For each target language it saves the dubbed audio, the dubbed video when CAMB made one, and the
    transcript as JSON, as ``camb_dub_run_<run_id>[_<language>]_{audio,video,transcript}.<ext>``; the files
    are written under temporary names and all moved into place only when every one is complete, so
    either the whole result reaches its final names or none of it does. It reads both result
    shapes: one object (saved without a language in the names, keyed ``"default"``) or a map from language
    to object. The audio/video links are bearer links: fetched without the API key, shown nowhere (XCom,
    logs, errors) beyond their host.

    Returns ``{language: {"audio": file, "video": file or None, "transcript": file}}`` where each file is
    ``{"path", "bytes", "sha256", "content_type"}``.

    See ``CambResultOperator`` for the parameters (``run_id``, ``destination``, ``destination_conn_id``).
    """

    def save(self, context: Context, run_id: int, folder: ObjectStoragePath) -> dict[str, dict[str, Any]]:
        outputs = self.hook.get_dub_result(run_id)
        stems = dubbed_stems(f"camb_dub_run_{run_id}", outputs, f"CAMB dubbing run {run_id}")
        self.log.info("CAMB dubbing run %s has %d dubbed outputs; saving them to %s.", run_id, len(outputs), folder)
        with result_files(folder) as files:  # every file of every language reaches its final name, or none does
            saved = {
                SINGLE_RESULT if language is None else language: save_dubbed(
                    self.hook, files, stems[language], output, self.max_bytes
                )
                for language, output in outputs.items()
            }
        files_saved = [file for output in saved.values() for file in output.values() if file is not None]
        for file in files_saved:
            self.log.info("Saved %s (%d bytes, %s).", file["path"], file["bytes"], file["content_type"])
        self.record_result(context, self.hook.settings.base_url, DUB, run_id, files_saved)
        return saved


def save_dubbed(
    hook: CambHook, files: ResultFiles, stem: str, output: DubbedOutput, max_bytes: int | None = None
) -> dict[str, Any]:
    """Write one language's dubbed audio, video (when made) and transcript into ``files``, as
    ``<stem>_{audio,video,transcript}.<ext>``; returns ``{"audio", "video" (or None), "transcript"}``, each
    ``{"path", "bytes", "sha256", "content_type"}``."""

    def link(part: str, url: str, what: str) -> dict[str, Any]:
        final, file = files.write(
            f"{stem}_{part}",
            lambda target: hook.download_link(url, target, what=what, max_bytes=max_bytes),
            lambda file: f"{stem}_{part}.{media_extension(file.content_type, url)}",
        )
        hook.log.info("Downloaded %s from %s (%d bytes, %s).", what, url_host(url), file.bytes, file.content_type)
        return _listed(final, file)

    saved = {
        "audio": link("audio", output.audio_url, "the dubbed audio"),
        "video": None if output.video_url is None else link("video", output.video_url, "the dubbed video"),
    }
    text = json.dumps(output.transcript, ensure_ascii=False, indent=2).encode()

    def write_transcript(file: IO[bytes]) -> DownloadedFile:
        file.write(text)
        return DownloadedFile(len(text), hashlib.sha256(text).hexdigest(), "application/json")

    final, transcript = files.write(f"{stem}_transcript", write_transcript, lambda _: f"{stem}_transcript.json")
    saved["transcript"] = _listed(final, transcript)
    return saved


def dubbed_stems(prefix: str, outputs: Mapping[str | None, DubbedOutput], what: str) -> dict[str | None, str]:
    """The file-name stem of each language's outputs: ``<prefix>`` alone (one result object), else
    ``<prefix>_<language>`` made file-safe; languages that would share a stem are refused."""
    stems = {
        language: prefix + ("" if language is None else "_" + (_UNSAFE.sub("_", language)[:40] or "_"))
        for language in outputs
    }
    if len(set(stems.values())) != len(stems):
        raise CambResponseError(f"{what} names languages that give the same file names: {sorted(map(str, stems))}.")
    return stems


def _listed(path: ObjectStoragePath, file: DownloadedFile) -> dict[str, Any]:
    return {"path": str(path), "bytes": file.bytes, "sha256": file.sha256, "content_type": file.content_type}
