"""The hook's methods for one kind each: thin, typed forms of its generic create and result path.

Each calls ``CambHook.create``, ``get_result`` or ``get_results`` with the kind's row; a new kind needs
none of them (``hook.create(kind, fields)`` serves it). They stay because users' DAGs call them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, Unpack

from airflow_provider_camb.api import ApiRequest, check_output_type
from airflow_provider_camb.kinds import DUB, TEXT_TO_SOUND, TEXT_TO_VOICE, TRANSLATED_TTS, TTS, CambKind, kind_of
from airflow_provider_camb.kinds.dub import DubbedOutput, DubOptions
from airflow_provider_camb.kinds.text_to_sound import TextToSoundOptions
from airflow_provider_camb.kinds.text_to_voice import CustomVoiceOptions, custom_voice_request
from airflow_provider_camb.kinds.translated_tts import TranslatedTtsOptions
from airflow_provider_camb.kinds.tts import TtsOptions


class _Generic(Protocol):
    def create(self, kind: str | CambKind, fields: Mapping[str, Any], *, wait_out_rate_limits: bool = True) -> str: ...

    def get_result(self, kind: str | CambKind, run_id: int | str) -> Any: ...

    async def aget_result(self, kind: str | CambKind, run_id: int | str) -> Any: ...

    def get_results(self, kind: str | CambKind, run_ids: Iterable[int | str]) -> dict[int, Any]: ...

    def create_voice(self, request: ApiRequest, audio: str | os.PathLike[str]) -> int: ...


class KindMethods:
    """``create_tts``, ``get_dub_result``, ... over the generic path of ``CambHook``."""

    def create_text_to_voice(
        self: _Generic,
        text: str,
        voice_description: str,
        *,
        project_name: str | None = None,
        project_description: str | None = None,
        folder_id: int | None = None,
        check_description: bool = True,
    ) -> str:
        """Start designing a voice (``create("text-to-voice", fields)``); return the CAMB task id.

        :param text: What the sample voices will say.
        :param voice_description: The voice to design (CAMB needs 100+ characters and 18+ words).
        :param project_name: Optional CAMB project name.
        :param project_description: Optional CAMB project description.
        :param folder_id: Optional CAMB folder id.
        :param check_description: Refuse descriptions CAMB would not process (default True).
        """
        fields = {"text": text, "voice_description": voice_description, "check_description": check_description}
        project = {"project_name": project_name, "project_description": project_description, "folder_id": folder_id}
        return self.create(TEXT_TO_VOICE, {**fields, **project})

    def create_tts(
        self: _Generic, text: str, voice_id: int | str, language: int | str, **optional: Unpack[TtsOptions]
    ) -> str:
        """Start speaking ``text`` with ``voice_id`` in ``language`` (``POST /tts``); return the task id."""
        return self.create(TTS, {"text": text, "voice_id": voice_id, "language": language, **optional})

    def create_translated_tts(
        self: _Generic,
        text: str,
        voice_id: int | str,
        source_language: int | str,
        target_language: int | str,
        **optional: Unpack[TranslatedTtsOptions],
    ) -> str:
        """Start speaking ``text`` translated into ``target_language`` (``POST /translated-tts``); return its id."""
        fields = {"text": text, "voice_id": voice_id, "source_language": source_language}
        return self.create(TRANSLATED_TTS, {**fields, "target_language": target_language, **optional})

    def create_dub(
        self: _Generic,
        video_url: str,
        source_language: int | str,
        target_languages: int | str | list[int | str],
        **optional: Unpack[DubOptions],
    ) -> str:
        """Start dubbing the media at ``video_url`` (``POST /dub``); return the task id."""
        fields = {"video_url": video_url, "source_language": source_language, "target_languages": target_languages}
        return self.create(DUB, {**fields, **optional})

    def create_text_to_sound(self: _Generic, prompt: str, **optional: Unpack[TextToSoundOptions]) -> str:
        """Start making a sound or music from ``prompt`` (``POST /text-to-sound``); return the task id."""
        return self.create(TEXT_TO_SOUND, {"prompt": prompt, **optional})

    def get_text_to_voice_result(self: _Generic, run_id: int | str) -> list[str]:
        """The preview URLs (the generated sample voices) of a successful run."""
        previews: list[str] = self.get_result(TEXT_TO_VOICE, run_id)
        return previews

    async def aget_text_to_voice_result(self: _Generic, run_id: int | str) -> list[str]:
        """The preview URLs of a run, without blocking the loop."""
        previews: list[str] = await self.aget_result(TEXT_TO_VOICE, run_id)
        return previews

    def get_result_link(self: _Generic, kind: str | CambKind, run_id: int | str) -> str:
        """The ``output_url`` (a bearer link) of a speech or sound run's result (``output_type=FILE_URL``)."""
        check_output_type(kind_of(kind), "FILE_URL")  # a kind whose result is one media file, or refused here
        link: str = self.get_result(kind, run_id)
        return link

    def get_result_links(self: _Generic, kind: str | CambKind, run_ids: Iterable[int | str]) -> dict[int, str]:
        """The media result links (bearer links) of many speech or sound runs, by run id (in bulk)."""
        check_output_type(kind_of(kind), "FILE_URL")
        return self.get_results(kind, run_ids)

    def get_dub_result(self: _Generic, run_id: int | str) -> dict[str | None, DubbedOutput]:
        """The dubbed outputs of a run: ``{None: output}`` (one object) or ``{language: output}``."""
        outputs: dict[str | None, DubbedOutput] = self.get_result(DUB, run_id)
        return outputs

    def get_dub_results(self: _Generic, run_ids: Iterable[int | str]) -> dict[int, dict[str | None, DubbedOutput]]:
        """The dubbed outputs of many runs by run id (``POST /dubbing-results``; a run left out is asked alone)."""
        return self.get_results(DUB, run_ids)

    def create_custom_voice(
        self: _Generic,
        audio: str | os.PathLike[str],
        voice_name: str,
        gender: int | str,
        **optional: Unpack[CustomVoiceOptions],
    ) -> int:
        """Keep a preview as a permanent custom voice; return its ``voice_id`` (``create_voice``).

        :param audio: Path of the audio file (e.g. a downloaded preview).
        :param voice_name: Name of the new voice.
        :param gender: CAMB's gender code (a whole number; 0: not specified).
        :param optional: ``run_id`` (the text-to-voice run the preview came from), ``age``, ``description``,
            ``language`` (a CAMB language id).
        """
        request = custom_voice_request({"voice_name": voice_name, "gender": gender, **optional})
        return self.create_voice(request, audio)
