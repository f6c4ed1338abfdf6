"""The CAMB task kinds: one row each, the only place a kind's paths and advice are written.

Every long-running CAMB operation is a task: ``POST /{create}`` starts it, ``GET /{kind}/{task_id}``
reports the same status object until a terminal status, and on SUCCESS its ``run_id`` leads to
``GET /{result}/{run_id}``. The waiting core (trigger, sensor, worker-side wait), the requests in
``api.py`` and the stand-in's routes all read this table, so a new kind is a row here plus a small
module per layer for what really differs (its create body and its result).
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_provider_camb.exceptions import CambInputError


@dataclass(frozen=True)
class CambKind:
    """What one CAMB task kind is called, where it lives, and what to do when a task of it fails.

    :param name: The kind as CAMB spells it in the status path ``/{name}/{task_id}``.
    :param label: Human words for the kind, used in logs and errors ("text-to-speech task").
    :param create_path: Where a POST starts a task.
    :param result_path: Where ``/{result_path}/{run_id}`` gives the result of a run.
    :param inputs: What to review when a task of this kind ends with ERROR.
    :param output_types: The ``output_type`` values its result endpoint takes (empty: a JSON result only).
        ``RAW_BYTES`` streams the media itself from the API host; ``FILE_URL`` answers a bearer link to it.
    :param media: What its result holds when it is media (file names and log lines say so), e.g. ``speech``.
    :param bulk_result_path: Where ``POST /{bulk_result_path}`` with ``{"run_ids": [...]}`` gives the results
        of many runs at once (empty: the kind has no bulk endpoint).
    """

    name: str
    label: str
    create_path: str
    result_path: str
    inputs: str
    output_types: tuple[str, ...] = ()
    media: str = ""
    bulk_result_path: str = ""

    def status_path(self, encoded_task_id: str) -> str:
        return f"/{self.name}/{encoded_task_id}"

    def result_url_path(self, run_id: int) -> str:
        return f"/{self.result_path}/{run_id}"

    @property
    def error_advice(self) -> str:
        return (
            f"Review the inputs ({self.inputs}) and run it again; "
            "contact CAMB.AI support with the task id if they look right."
        )


TEXT_TO_VOICE = CambKind(
    "text-to-voice", "text-to-voice", "/text-to-voice", "text-to-voice-result", "text and voice description"
)
#: The result output types of the kinds whose result is one media file.
MEDIA_OUTPUT_TYPES = ("RAW_BYTES", "FILE_URL")

TTS = CambKind(
    "tts",
    "text-to-speech",
    "/tts",
    "tts-result",
    "text, voice_id and language",
    MEDIA_OUTPUT_TYPES,
    "speech",
    "tts-results",
)
TRANSLATED_TTS = CambKind(
    "translated-tts",
    "translated text-to-speech",
    "/translated-tts",
    "tts-result",
    "text, voice_id and languages",
    MEDIA_OUTPUT_TYPES,
    "speech",
    "tts-results",
)
DUB = CambKind("dub", "dubbing", "/dub", "dub-result", "video_url and languages", bulk_result_path="dubbing-results")
TEXT_TO_SOUND = CambKind(
    "text-to-sound",
    "text-to-sound",
    "/text-to-sound",
    "text-to-sound-result",
    "prompt",
    MEDIA_OUTPUT_TYPES,
    "sound",
    "text-to-sound-results",
)
TRANSCRIBE = CambKind(
    "transcribe",
    "transcription",
    "/transcribe",
    "transcription-result",
    "media and language",
    bulk_result_path="transcription-results",
)
AUDIO_SEPARATION = CambKind(
    "audio-separation",
    "audio separation",
    "/audio-separation",
    "audio-separation-result",
    "media file",
    bulk_result_path="audio-separation-results",
)

#: Every kind by its name.
KINDS: dict[str, CambKind] = {
    kind.name: kind for kind in (TEXT_TO_VOICE, TTS, TRANSLATED_TTS, DUB, TEXT_TO_SOUND, TRANSCRIBE, AUDIO_SEPARATION)
}


def kind_of(name: object) -> CambKind:
    """The kind called ``name``; a ``CambInputError`` naming the known kinds for anything else."""
    if isinstance(name, CambKind):
        return name
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise CambInputError(f"Unknown CAMB task kind {name!r}; the kinds are: {', '.join(KINDS)}.")
    return kind
