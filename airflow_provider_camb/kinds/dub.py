"""Dubbing: dub a video or audio into other languages (``POST /dub``); the result is every dubbed output."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_camb.api import ApiRequest, result_link, result_what, unreadable
from airflow_provider_camb.exceptions import CambInputError
from airflow_provider_camb.kinds._fields import ProjectFields, create_request, flag, language, media_url, number_list
from airflow_provider_camb.kinds._kind import CambKind

TRANSCRIPTION_MODES = ("fast", "slow")


class DubOptions(ProjectFields, total=False):
    """The optional create fields of a dubbing task."""

    selected_audio_tracks: list[int | str]  # audio track numbers to dub
    add_output_as_an_audio_track: bool
    chosen_dictionaries: list[int | str]  # CAMB dictionary ids
    ai_optimization: bool
    transcription_mode: str  # "fast" or "slow"
    source_transcript: dict[str, Any]  # CAMB's SRT input
    target_transcripts: list[dict[str, Any]]  # one per target language


class DubFields(DubOptions, total=False):
    """The create fields of a dubbing task (the first three are required)."""

    video_url: str
    source_language: int | str  # a CAMB language id or a locale tag
    target_languages: int | str | list[int | str]


@dataclass(frozen=True)
class DubbedOutput:
    """The dubbed result of one target language. The links are bearer links: never shown beyond their host."""

    audio_url: str = field(repr=False)
    video_url: str | None = field(repr=False)
    transcript: list[dict[str, Any]]


def dub_request(fields: Mapping[str, Any]) -> ApiRequest:
    """``POST /dub``: dub the media at ``video_url`` into each target language (ids or locale tags)."""
    target_languages = fields.get("target_languages")
    targets = target_languages if isinstance(target_languages, (list, tuple)) else [target_languages]
    if not targets:
        raise CambInputError("target_languages must name at least one language.")
    body: dict[str, Any] = {
        "video_url": media_url("video_url", fields.get("video_url")),
        "source_language": language("source_language", fields.get("source_language")),
        "target_languages": [language(f"target_languages[{i}]", value) for i, value in enumerate(targets)],
    }
    if len(set(body["target_languages"])) != len(targets):
        raise CambInputError(f"target_languages names a language twice: {body['target_languages']!r}.")
    for name in ("selected_audio_tracks", "chosen_dictionaries"):
        if fields.get(name) is not None:
            body[name] = number_list(name, fields[name])
    for name in ("add_output_as_an_audio_track", "ai_optimization"):
        if fields.get(name) is not None:
            body[name] = flag(name, fields[name])
    mode = fields.get("transcription_mode")
    if mode is not None:
        if mode not in TRANSCRIPTION_MODES:
            raise CambInputError(f"transcription_mode must be one of {TRANSCRIPTION_MODES}, got {mode!r}.")
        body["transcription_mode"] = mode
    source = fields.get("source_transcript")
    if source is not None:
        if not isinstance(source, dict):
            raise CambInputError("source_transcript must be a JSON object (CAMB's SRT input).")
        body["source_transcript"] = source
    targets_srt = fields.get("target_transcripts")
    if targets_srt is not None:
        if not isinstance(targets_srt, (list, tuple)) or not all(isinstance(t, dict) for t in targets_srt):
            raise CambInputError("target_transcripts must be a list of JSON objects, one per target language.")
        body["target_transcripts"] = list(targets_srt)
    return create_request(DUB, body, fields)


def parse_dub_result(body: Any, kind: CambKind, run_id: int) -> dict[str | None, DubbedOutput]:
    """The dubbed outputs of a run: ``{None: output}`` for the one-object shape, else ``{language: output}``."""
    what = result_what(kind, run_id)
    if not isinstance(body, dict) or not body:
        raise unreadable(what, "expected a JSON object")
    if "audio_url" in body:
        return {None: _dubbed(body, what, "")}
    return {str(lang): _dubbed(result, what, f" for language {str(lang)[:50]!r}") for lang, result in body.items()}


def _dubbed(result: Any, what: str, where: str) -> DubbedOutput:
    if not isinstance(result, dict):
        raise unreadable(what, f"a result{where} that is not an object")
    video = result.get("video_url")
    transcript = result.get("transcript", [])
    if not isinstance(transcript, list) or not all(isinstance(line, dict) for line in transcript):
        raise unreadable(what, f"a transcript{where} that is not a list of objects")
    return DubbedOutput(
        audio_url=result_link(result.get("audio_url"), what, f"an audio_url{where}"),
        video_url=None if video is None else result_link(video, what, f"a video_url{where}"),
        transcript=transcript,
    )


DUB = CambKind(
    "dub",
    "dubbing",
    "/dub",
    "dub-result",
    "video_url and languages",
    bulk_result_path="dubbing-results",
    create_fields=DubFields,
    build=dub_request,
    parse_result=parse_dub_result,
)
