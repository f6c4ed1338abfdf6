"""One handler per CAMB task kind: how the stand-in checks its create body and answers its result.

Everything else (routes, task bookkeeping, statuses, faults, keys, recording) is shared and comes from
``airflow_provider_camb.kinds``; a new kind is one ``KindHandler`` here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from airflow_provider_camb.kinds import (
    AUDIO_SEPARATION,
    DUB,
    KINDS,
    TEXT_TO_SOUND,
    TEXT_TO_VOICE,
    TRANSCRIBE,
    TRANSLATED_TTS,
    TTS,
)
from airflow_provider_camb.kinds.translate import TRANSLATE
from airflow_provider_camb.testing import _audio
from airflow_provider_camb.testing._replies import Reply, invalid, json_reply
from airflow_provider_camb.testing._tasks import Run
from airflow_provider_camb.testing._validation import (
    Error,
    check_create,
    check_dub,
    check_fields,
    check_media_form,
    check_text_to_sound,
    check_translated_tts,
    check_tts,
    error,
)

#: A fake MP4 for dubbed videos: a valid ``ftyp`` box, then filler. Clients only store it.
_MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(4096)


@dataclass(frozen=True)
class ResultCall:
    """What a result handler gets: the run, its id, the query, and the storage host's base URL for links."""

    run_id: int
    run: Run
    query: Mapping[str, str]
    storage: str

    def link(self, name: str) -> str:
        """A bearer link on the storage host to one file of this run (its token is the secret)."""
        return f"{self.storage}/media/{self.run_id}/{name}?token={self.run.token}"


@dataclass(frozen=True)
class KindHandler:
    """What differs per kind: the create check, whether the create is multipart, and the result."""

    check: Callable[[Any, bool], list[Error]]  # (JSON body or multipart form, has a file part) -> errors
    result: Callable[[ResultCall], Reply]
    multipart: bool = False
    run_kinds: frozenset[str] = frozenset()  # the kinds whose runs its result endpoint serves (default: its own)
    bulk: Callable[[ResultCall], Any] | None = None  # one run's value in a bulk result reply (None: no bulk endpoint)


def wav_reply(data_bytes: int, content_type: str = "audio/wav", tone: int = 0) -> Reply:
    """A streamed WAV tone (see ``_audio``); previews of one run each get their own ``tone``."""
    return Reply(
        200,
        content_type=content_type,
        stream=partial(_audio.wav_chunks, data_bytes, tone),
        length=_audio.HEADER_BYTES + data_bytes,
    )


def media_file(run: Run, name: str) -> Reply:
    """A file of the storage host's ``/media/{run}/{name}``: a WAV tone, or a stand-in MP4."""
    if name.endswith(".mp4"):
        return Reply(200, _MP4, content_type="video/mp4")
    return wav_reply(run.data_bytes)


def _previews(call: ResultCall) -> Reply:
    base = call.storage
    links = [f"{base}/previews/{call.run_id}/{i}.wav?token={call.run.token}" for i in range(call.run.previews)]
    return json_reply(200, {"previews": links})


def _media(media: str, call: ResultCall) -> Reply:
    """A one-file result: RAW_BYTES streams the audio itself, FILE_URL answers a link to it."""
    output_type = call.query.get("output_type", "RAW_BYTES")
    if output_type == "FILE_URL":
        return json_reply(200, {"output_url": call.link(f"{media}.wav")})
    if output_type != "RAW_BYTES":
        return invalid([error(("query", "output_type"), "enum", "Input should be 'RAW_BYTES' or 'FILE_URL'")])
    return wav_reply(call.run.data_bytes)


def _media_link(media: str, call: ResultCall) -> Any:
    """A speech run's value in ``POST /tts-results``: the link itself (the SDK's ``str`` shape)."""
    return call.link(f"{media}.wav")


def _sound_link(call: ResultCall) -> Any:
    """A sound run's value in ``POST /text-to-sound-results``: ``{"output_url": link}`` (``TextToAudioResult``)."""
    return {"output_url": call.link("sound.wav")}


def _dubbed(call: ResultCall) -> Reply:
    return json_reply(200, _dub_value(call))


def _dub_value(call: ResultCall) -> Any:
    """One object for one target language, else a map from each language to one."""
    body = call.run.request
    languages = body.get("target_languages") or [body.get("target_language")]

    def output(language: object) -> dict[str, Any]:
        return {
            "audio_url": call.link(f"{language}.audio.wav"),
            "video_url": call.link(f"{language}.video.mp4") if call.run.dub_video else None,
            "transcript": [
                {"start": 0.0, "end": 1.5, "text": f"Hello ({language}).", "speaker": "SPEAKER_0"},
                {"start": 1.5, "end": 3.0, "text": f"Goodbye ({language}).", "speaker": "SPEAKER_1"},
            ],
        }

    if len(languages) == 1:
        return output(languages[0])
    return {str(language): output(language) for language in languages}


def _transcript_value(call: ResultCall) -> Any:
    return {"transcript": [{"start": 0.0, "end": 1.0, "text": "Hello.", "speaker": "SPEAKER_0"}]}


def _separated_value(call: ResultCall) -> Any:
    return {"foreground_audio_url": call.link("foreground.wav"), "background_audio_url": call.link("background.wav")}


def _translated_value(call: ResultCall) -> Any:
    """``TranslationResult``: each text sent, "translated" into the target language (marked, not translated)."""
    target = call.run.request.get("target_language")
    return {"texts": [f"[{target}] {text}" for text in call.run.request.get("texts", [])]}


def _check_translate(body: Any, _: bool) -> list[Error]:
    required = {"texts": "strs", "source_language": "lang", "target_language": "lang"}
    optional = {"age": "int", "formality": "int", "gender": "int", "chosen_dictionaries": "ints"}
    return check_fields(body, required, optional)


def _json(value: Callable[[ResultCall], Any]) -> Callable[[ResultCall], Reply]:
    """A result handler answering one run's value as JSON."""
    return lambda call: json_reply(200, value(call))


HANDLERS: dict[str, KindHandler] = {
    TEXT_TO_VOICE.name: KindHandler(lambda body, _: check_create(body), _previews),
    TTS.name: KindHandler(
        lambda body, _: check_tts(body),
        partial(_media, "speech"),
        run_kinds=frozenset({TTS.name, TRANSLATED_TTS.name}),
        bulk=partial(_media_link, "speech"),
    ),
    TRANSLATED_TTS.name: KindHandler(
        lambda body, _: check_translated_tts(body), partial(_media, "speech"), bulk=partial(_media_link, "speech")
    ),
    DUB.name: KindHandler(lambda body, _: check_dub(body), _dubbed, bulk=_dub_value),
    TEXT_TO_SOUND.name: KindHandler(
        lambda body, _: check_text_to_sound(body), partial(_media, "sound"), bulk=_sound_link
    ),
    TRANSCRIBE.name: KindHandler(
        lambda form, has_file: check_media_form(form, has_file, ("language",), "file"),
        _json(_transcript_value),
        multipart=True,
        bulk=_transcript_value,
    ),
    TRANSLATE.name: KindHandler(_check_translate, _json(_translated_value), bulk=_translated_value),
    AUDIO_SEPARATION.name: KindHandler(
        lambda form, has_file: check_media_form(form, has_file, (), "media_file"),
        _json(_separated_value),
        multipart=True,
        bulk=_separated_value,
    ),
}
assert set(HANDLERS) == set(KINDS), "every kind of airflow_provider_camb.kinds needs a stand-in handler"
assert all(bool(HANDLERS[name].bulk) == bool(kind.bulk_result_path) for name, kind in KINDS.items()), (
    "a kind with a bulk result endpoint needs a stand-in bulk handler"
)
