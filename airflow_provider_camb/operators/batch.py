"""Batch operators: a catalogue of CAMB tasks of one kind in one Airflow task, each a small subclass of the batch core.

``CambTextToSpeechBatchOperator`` (and ``CambTranslatedTextToSpeechBatchOperator``), ``CambTextToSoundBatchOperator``,
``CambDubbingBatchOperator``, ``CambTextToVoiceBatchOperator``, ``CambTranslationBatchOperator``,
``CambTranscriptionBatchOperator`` and ``CambAudioSeparationBatchOperator`` take ``items`` (or ``items_uri``), each item
holding the fields of the kind's single create operator plus an optional ``key``; their own fields of the
same names are defaults for every item. What they write, per item ``key``:

- speech and sound: ``<key>.<ext>`` (the links come in bulk: ``POST /tts-results``, ``/text-to-sound-results``);
- dubbing: ``<key>[_<language>]_{audio,video,transcript}.<ext>`` (in bulk: ``POST /dubbing-results``);
- text-to-voice: every preview, ``<key>_preview_<i>.<ext>`` (CAMB has no bulk endpoint for them);
- translation and transcription: ``<key>.json``, the document their single result operator saves (in bulk:
  ``POST /translation-results``, ``/transcription-results``);
- audio separation: ``<key>_foreground.<ext>`` and ``<key>_background.<ext>`` (in bulk:
  ``POST /audio-separation-results``).

Transcription and audio separation items may upload a ``media_file`` each (``UploadingBatch``).

See ``CambBatchOperator`` for the parameters they share, the manifest and what a retry does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_camb import _manifest
from airflow_provider_camb._manifest import Entry
from airflow_provider_camb._storage import media_extension, result_files
from airflow_provider_camb._task_memory import starting
from airflow_provider_camb.api import ApiRequest
from airflow_provider_camb.kinds import AUDIO_SEPARATION, DUB, TEXT_TO_SOUND, TEXT_TO_VOICE, TRANSLATED_TTS, TTS
from airflow_provider_camb.kinds._fields import PROJECT_FIELDS
from airflow_provider_camb.kinds.transcribe import TRANSCRIBE
from airflow_provider_camb.kinds.translate import TRANSLATE
from airflow_provider_camb.operators._uploading_batch import UploadingBatch
from airflow_provider_camb.operators.audio_separation import save_stems
from airflow_provider_camb.operators.camb_batch import CambBatchOperator
from airflow_provider_camb.operators.camb_json_result import CambJsonResultOperator, write_json
from airflow_provider_camb.operators.camb_media_task import media_detail
from airflow_provider_camb.operators.dubbing import dubbed_stems, save_dubbed
from airflow_provider_camb.operators.text_to_sound import _TextToSoundOptions
from airflow_provider_camb.operators.text_to_speech import _TtsOptions
from airflow_provider_camb.operators.text_to_voice import save_preview
from airflow_provider_camb.operators.transcription import CambTranscriptionResultOperator
from airflow_provider_camb.operators.translation import CambTranslationResultOperator, _TranslationOptions

__all__ = [
    "CambAudioSeparationBatchOperator",
    "CambDubbingBatchOperator",
    "CambTextToSoundBatchOperator",
    "CambTextToSpeechBatchOperator",
    "CambTextToVoiceBatchOperator",
    "CambTranscriptionBatchOperator",
    "CambTranslatedTextToSpeechBatchOperator",
    "CambTranslationBatchOperator",
]


def _listed(file: Mapping[str, Any]) -> dict[str, Any]:
    return {"path": file["path"], "bytes": file["bytes"], "sha256": file["sha256"]}


class _MediaBatch(CambBatchOperator):
    """A batch whose every result is one media file (speech, sound): links in bulk, then ``<key>.<ext>``."""

    def fetch_results(self, run_ids: list[int]) -> dict[int, Any]:
        return self.hook.get_result_links(self.kind, run_ids)

    def save_item(self, folder: ObjectStoragePath, entry: Entry, result: Any) -> list[dict[str, Any]]:
        url, what = str(result), f"the {self.kind.media} of item {entry.key!r}"
        with result_files(folder) as files:
            final, saved = files.write(
                entry.key,
                lambda file: self.hook.download_link(url, file, what=what, max_bytes=self.max_bytes),
                lambda saved: f"{entry.key}.{media_extension(saved.content_type, url)}",
            )
        return [_manifest.listed(final, saved.bytes, saved.sha256)]


class CambTextToSpeechBatchOperator(_TtsOptions, _MediaBatch):
    """Speak many texts (``POST /tts`` per item) and save each speech as ``<key>.<ext>``.

    Each item: ``text`` and optionally ``voice_id``, ``language``, ``gender``, ``age``, the project fields
    and ``key``; the operator's own ``voice_id``, ``language``, ``gender`` and ``age`` are the defaults.

    :param voice_id: The voice of every item without its own (templated).
    :param language: CAMB's language id of every item without its own (templated).
    :param gender: Optional CAMB gender code (templated).
    :param age: Optional age of the speaker (templated).
    """

    kind = TTS
    item_fields = ("text", "voice_id", "language", "gender", "age")
    default_fields = ("voice_id", "language", "gender", "age")
    template_fields: Sequence[str] = (*CambBatchOperator.template_fields, *default_fields)

    def __init__(self, *, voice_id: int | str | None = None, language: int | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keep_fields(locals(), self.kind.fields)


class CambTranslatedTextToSpeechBatchOperator(_TranslationOptions, _MediaBatch):
    """Speak many texts in another language (``POST /translated-tts`` per item); save each as ``<key>.<ext>``.

    Each item: ``text`` and optionally ``voice_id``, ``source_language``, ``target_language``, ``gender``,
    ``age``, ``formality``, ``chosen_dictionaries``, the project fields and ``key``; the operator's own
    fields of those names are the defaults.
    """

    kind = TRANSLATED_TTS
    item_fields = tuple(name for name in TRANSLATED_TTS.fields if name not in PROJECT_FIELDS)
    default_fields = tuple(name for name in item_fields if name != "text")
    template_fields: Sequence[str] = (*CambBatchOperator.template_fields, *default_fields)

    def __init__(
        self,
        *,
        voice_id: int | str | None = None,
        source_language: int | str | None = None,
        target_language: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.keep_fields(locals(), self.kind.fields)


class CambTextToSoundBatchOperator(_TextToSoundOptions, _MediaBatch):
    """Make many sounds or pieces of music (``POST /text-to-sound`` per item); save each as ``<key>.<ext>``.

    Each item: ``prompt`` and optionally ``duration``, ``audio_type``, the project fields and ``key``.

    :param duration: The length in seconds of every item without its own (templated).
    :param audio_type: ``"sound"`` or ``"music"`` for every item without its own (templated).
    """

    kind = TEXT_TO_SOUND
    item_fields = ("prompt", "duration", "audio_type")
    default_fields = ("duration", "audio_type")
    described_by: ClassVar[str] = "prompt"
    template_fields: Sequence[str] = (*CambBatchOperator.template_fields, *default_fields)


class CambDubbingBatchOperator(CambBatchOperator):
    """Dub many videos (``POST /dub`` per item); save each language's audio, video and transcript.

    Each item: ``video_url`` and optionally ``source_language``, ``target_languages`` and the other fields of
    ``CambDubbingOperator``, the project fields and ``key``. Files: ``<key>[_<language>]_audio.<ext>``,
    ``..._video.<ext>`` (when CAMB made one) and ``..._transcript.json``.

    :param source_language: The language spoken in every item without its own (templated).
    :param target_languages: The languages to dub every item without its own into (templated).
    """

    kind = DUB
    item_fields = tuple(name for name in DUB.fields if name not in PROJECT_FIELDS)
    default_fields = ("source_language", "target_languages")
    described_by: ClassVar[str] = "video_url"
    template_fields: Sequence[str] = (*CambBatchOperator.template_fields, *default_fields)

    def __init__(
        self,
        *,
        source_language: int | str | None = None,
        target_languages: int | str | list[int | str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.keep_fields(locals(), self.kind.fields)

    def fetch_results(self, run_ids: list[int]) -> dict[int, Any]:
        return self.hook.get_dub_results(run_ids)

    def save_item(self, folder: ObjectStoragePath, entry: Entry, result: Any) -> list[dict[str, Any]]:
        stems = dubbed_stems(entry.key, result, f"CAMB dubbing run {entry.run_id} of item {entry.key!r}")
        with result_files(folder) as files:  # every file of the item reaches its final name, or none does
            saved = [
                save_dubbed(self.hook, files, stems[language], output, self.max_bytes)
                for language, output in result.items()
            ]
        return [_listed(file) for output in saved for file in output.values() if file is not None]


class CambTextToVoiceBatchOperator(CambBatchOperator):
    """Design many voices (``POST /text-to-voice`` per item); save every preview as ``<key>_preview_<i>.<ext>``.

    Each item: ``text`` and ``voice_description`` (checked as ``TextToVoiceOperator`` checks them), the
    project fields and ``key``. CAMB has no bulk endpoint for previews: each run's result is asked alone.

    :param voice_description: The description of every item without its own (templated).
    :param check_description: Refuse descriptions CAMB would not process before sending (default True).
    """

    kind = TEXT_TO_VOICE
    item_fields = ("text", "voice_description")
    default_fields = ("voice_description",)
    template_fields: Sequence[str] = (*CambBatchOperator.template_fields, *default_fields)
    check_description: bool

    def __init__(self, *, voice_description: str | None = None, check_description: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keep_fields(locals(), self.kind.fields)

    def item_request(self, fields: Mapping[str, Any]) -> ApiRequest:
        return self.kind.create_request({**fields, "check_description": self.check_description})

    def fetch_results(self, run_ids: list[int]) -> dict[int, Any]:
        return {run_id: self.hook.get_text_to_voice_result(run_id) for run_id in run_ids}

    def save_item(self, folder: ObjectStoragePath, entry: Entry, result: Any) -> list[dict[str, Any]]:
        with result_files(folder) as files:  # every preview of the item reaches its final name, or none does
            saved = [
                save_preview(self.hook, files, url, f"{entry.key}_preview_{i}", self.max_bytes)
                for i, url in enumerate(result)
            ]
        return [_listed(file) for file in saved]


class _JsonBatch(CambBatchOperator):
    """A batch whose every result is JSON (texts, a transcript): results in bulk, then ``<key>.json``, the very
    document the kind's single result operator (``result_operator``) saves."""

    result_operator: ClassVar[type[CambJsonResultOperator]]

    def fetch_results(self, run_ids: list[int]) -> dict[int, Any]:
        return self.hook.get_results(self.kind, run_ids)

    def save_item(self, folder: ObjectStoragePath, entry: Entry, result: Any) -> list[dict[str, Any]]:
        final, saved = write_json(folder, entry.key, self.result_operator.document(result))
        return [_manifest.listed(final, saved.bytes, saved.sha256)]


class CambTranslationBatchOperator(_TranslationOptions, _JsonBatch):
    """Translate many lists of texts (``POST /translate`` per item); save each as ``<key>.json``: ``{"texts": [...]}``.

    Each item: ``texts`` and optionally ``source_language``, ``target_language``, ``age``, ``formality``,
    ``gender``, ``chosen_dictionaries`` (checked as ``CambTranslationOperator`` checks them), the project
    fields and ``key``; the operator's own fields of those names are the defaults.
    """

    kind = TRANSLATE
    result_operator = CambTranslationResultOperator
    item_fields = ("texts", "source_language", "target_language", "age", "formality", "gender", "chosen_dictionaries")
    default_fields = item_fields[1:]
    template_fields: Sequence[str] = (*CambBatchOperator.template_fields, *default_fields)

    def __init__(
        self,
        *,
        source_language: int | str | None = None,
        target_language: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.keep_fields(locals(), self.kind.fields)

    def item_detail(self, body: Mapping[str, Any]) -> str | None:
        texts = body.get("texts") or [None]
        return starting("first text", texts[0])


class CambTranscriptionBatchOperator(UploadingBatch, _JsonBatch):
    """Transcribe many media files or URLs (``POST /transcribe`` per item); save each transcript as ``<key>.json``:
    ``{"text": ..., "segments": [...]}``, as ``CambTranscriptionResultOperator`` saves it.

    Each item: ``media_file`` (a local path or object storage URI, uploaded with its create) or ``media_url``
    (a public http(s) URL CAMB fetches), one of them, and optionally ``language``, the project fields and
    ``key``. See ``UploadingBatch`` for ``media_conn_id`` and how files are checked.

    :param language: The spoken language of every item without its own: a CAMB language id, a locale tag or
        ``"auto"`` (templated).
    """

    kind = TRANSCRIBE
    result_operator = CambTranscriptionResultOperator
    item_fields = ("media_url", "language", "media_file")
    default_fields = ("language",)
    template_fields: Sequence[str] = (*CambBatchOperator.template_fields, *default_fields)

    def __init__(self, *, language: int | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keep_fields(locals(), self.kind.fields)

    def item_detail(self, body: Mapping[str, Any]) -> str | None:
        return media_detail(None, body.get("media_url"))


class CambAudioSeparationBatchOperator(UploadingBatch):
    """Separate many media files into voice and background (``POST /audio-separation`` per item, uploading the
    item's ``media_file``); save both stems as ``<key>_foreground.<ext>`` and ``<key>_background.<ext>``, both
    or neither, as ``CambAudioSeparationResultOperator`` saves them (the links in bulk).

    Each item: ``media_file`` (a local path or object storage URI), the project fields and ``key``. See
    ``UploadingBatch`` for ``media_conn_id`` and how files are checked.
    """

    kind = AUDIO_SEPARATION
    item_fields = ("media_file",)

    def fetch_results(self, run_ids: list[int]) -> dict[int, Any]:
        return self.hook.get_results(self.kind, run_ids)

    def save_item(self, folder: ObjectStoragePath, entry: Entry, result: Any) -> list[dict[str, Any]]:
        saved = save_stems(self.hook, folder, entry.key, result, self.max_bytes)
        return [_listed(file) for file in saved.values()]
