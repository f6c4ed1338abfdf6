"""One module per CAMB kind: its row, its checked create builder and its result parser, behind one hook path.

- every public module of ``airflow_provider_camb.kinds`` defines one kind, and ``KINDS`` holds exactly those;
- each kind's builder refuses bad input and unknown fields before any request reaches the stand-in;
- ``CambHook.create``, ``get_task_status``, ``get_result`` and ``get_results`` serve every kind over real HTTP;
- a custom voice's fields are checked once, by ``custom_voice_request``; storage links are ``LinkRequest``s.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from typing import Any

import pytest

import airflow_provider_camb.kinds as kinds_package
from airflow_provider_camb.api import ApiRequest, LinkRequest, classify_link_reply
from airflow_provider_camb.exceptions import CambInputError, CambLinkRefusedError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.kinds import KINDS, CambKind
from airflow_provider_camb.kinds.dub import DubbedOutput
from airflow_provider_camb.kinds.text_to_voice import custom_voice_request
from tests.shared import DESCRIPTION, TEXT

#: Good create fields of every kind the provider creates.
GOOD: dict[str, dict[str, Any]] = {
    "text-to-voice": {"text": TEXT, "voice_description": DESCRIPTION},
    "tts": {"text": TEXT, "voice_id": 7, "language": "1"},
    "translated-tts": {"text": TEXT, "voice_id": 7, "source_language": 1, "target_language": 2},
    "dub": {"video_url": "https://media.example/a.mp4", "source_language": 1, "target_languages": ["fr-fr"]},
    "text-to-sound": {"prompt": "Rain on a tin roof", "duration": 5},
    "translate": {"texts": [TEXT, "Goodbye."], "source_language": "en-us", "target_language": 76},
    "transcribe": {"language": "auto", "media_url": "https://media.example/talk.mp3"},
}
#: The kinds whose media is only a file part (their operator uploads it; tests/test_audio_separation.py).
FILE_ONLY = {"audio-separation"}
#: One bad value per kind's field, and what the refusal says.
BAD: list[tuple[str, str, Any, str]] = [
    ("text-to-voice", "voice_description", "too short", "CAMB needs at least 100 characters"),
    ("text-to-voice", "text", "\u200b ", "text must not be empty"),
    ("tts", "voice_id", "seven", "voice_id must be a whole number from 1"),
    ("tts", "gender", -1, "gender must be a whole number from 0"),
    ("translated-tts", "chosen_dictionaries", [1, "x"], r"chosen_dictionaries\[1\] must be a whole number"),
    ("dub", "video_url", "file:///etc/passwd", "public http"),
    ("dub", "target_languages", ["fr-fr", "fr-fr"], "names a language twice"),
    ("dub", "ai_optimization", "yes", "ai_optimization must be True or False"),
    ("text-to-sound", "duration", "nan", "duration must be a positive number of seconds"),
    ("text-to-sound", "folder_id", 0, "folder_id must be a whole number from 1"),
    ("translate", "texts", "Hello.", "texts must be a non-empty list of strings"),
    ("translate", "texts", ["Hello.", " "], r"texts\[1\] must not be empty"),
    ("translate", "target_language", "en-us", "source_language and target_language are both"),
    ("translate", "formality", "formal", "formality must be a whole number"),
    ("transcribe", "language", "English", "language must be a CAMB language id"),
    ("transcribe", "media_url", "ftp://media.example/talk.mp3", "public http"),
]


@pytest.fixture
def hook(camb_connection: Any) -> Iterator[CambHook]:
    with CambHook() as hook:
        yield hook


def test_every_kind_module_defines_one_kind_and_kinds_holds_exactly_those() -> None:
    defined = []
    for module in pkgutil.iter_modules(kinds_package.__path__):
        if not module.name.startswith("_"):
            names = vars(importlib.import_module(f"airflow_provider_camb.kinds.{module.name}"))
            (kind,) = {value for value in names.values() if isinstance(value, CambKind)}
            defined.append(kind)
    assert sorted(kind.name for kind in defined) == sorted(KINDS)
    assert all(KINDS[kind.name] is kind for kind in defined)


def test_every_kind_the_provider_creates_has_fields_a_builder_and_a_parser() -> None:
    creatable = {name for name, kind in KINDS.items() if kind.build is not None}
    assert creatable == set(GOOD) | FILE_ONLY
    for name in creatable:
        kind = KINDS[name]
        assert kind.parse_result is not None
        assert {"project_name", "project_description", "folder_id"} <= set(kind.fields)
        assert set(GOOD.get(name, {})) <= set(kind.fields)
        request = kind.create_request(GOOD.get(name, {}))
        assert (request.method, request.path, request.may_repeat) == ("POST", kind.create_path, False)


@pytest.mark.parametrize(("kind", "field", "value", "message"), BAD, ids=[f"{b[0]}-{b[1]}" for b in BAD])
def test_each_kind_refuses_a_bad_field_before_any_request(
    hook: CambHook, camb_connection: Any, kind: str, field: str, value: Any, message: str
) -> None:
    with pytest.raises(CambInputError, match=message):
        hook.create(kind, {**GOOD[kind], field: value})
    assert camb_connection.request_count() == 0


@pytest.mark.parametrize("kind", list(GOOD))
def test_each_kind_refuses_an_unknown_or_a_missing_field_before_any_request(
    hook: CambHook, camb_connection: Any, kind: str
) -> None:
    with pytest.raises(CambInputError, match=r"has no field\(s\) voice_idd; its fields are "):
        hook.create(kind, {**GOOD[kind], "voice_idd": 7})
    required = next(iter(GOOD[kind]))
    with pytest.raises(CambInputError, match=required):
        hook.create(kind, {name: value for name, value in GOOD[kind].items() if name != required})
    assert camb_connection.request_count() == 0


@pytest.mark.parametrize(("kind", "fields"), [("transcribe", {"language": "auto"}), ("audio-separation", {})])
def test_an_uploading_kind_without_its_media_is_refused_before_any_request(
    hook: CambHook, camb_connection: Any, kind: str, fields: dict[str, Any]
) -> None:
    with pytest.raises(CambInputError, match=r"task needs its media: the file part 'media_file'.*Nothing was sent"):
        hook.create(kind, fields)
    assert camb_connection.request_count() == 0


def test_a_kind_without_a_builder_is_refused_before_any_request(hook: CambHook, camb_connection: Any) -> None:
    probe = CambKind("probe", "probe", "/probe", "probe-result", "nothing")
    with pytest.raises(CambInputError, match="cannot create CAMB probe tasks yet"):
        hook.create(probe, {})
    assert camb_connection.request_count() == 0


@pytest.mark.parametrize("kind", list(GOOD))
def test_the_generic_path_creates_waits_for_and_reads_every_kind(
    hook: CambHook, camb_connection: Any, kind: str
) -> None:
    camb_connection.configure(pending_reads=0)
    task_id = hook.create(kind, GOOD[kind])
    status = hook.get_task_status(kind, task_id)
    assert status.status == "SUCCESS" and status.kind is KINDS[kind]
    assert status.run_id is not None
    result = hook.get_result(kind, status.run_id)
    assert hook.get_results(kind, [status.run_id, str(status.run_id)]) == {status.run_id: result}
    if kind == "text-to-voice":
        assert result and all(url.startswith(camb_connection.preview_base_url) for url in result)
    elif kind == "dub":
        assert all(isinstance(output, DubbedOutput) for output in result.values())
    elif kind == "translate":
        assert result == ["[76] " + TEXT, "[76] Goodbye."]
    elif kind == "transcribe":
        assert [segment["text"] for segment in result] == ["Hello."]
    else:
        assert result.startswith(camb_connection.preview_base_url)  # a FILE_URL link
    (create,) = camb_connection.requests("create")
    assert create.path == KINDS[kind].create_path
    bulk = camb_connection.requests("bulk_result")
    assert len(bulk) == (1 if KINDS[kind].bulk_result_path else 0)  # text-to-voice runs are asked one by one


def test_a_custom_voice_is_checked_in_one_place_and_its_unknown_fields_are_refused() -> None:
    request = custom_voice_request({"voice_name": "Narrator", "gender": "0", "run_id": "12", "age": 40})
    assert request.form == {"voice_name": "Narrator", "gender": "0", "age": "40"}
    assert request.params == {"run_id": "12"}
    with pytest.raises(CambInputError, match=r"has no field\(s\) name"):
        custom_voice_request({"name": "Narrator", "gender": 1})
    with pytest.raises(CambInputError, match="gender must be a whole number from 0"):
        custom_voice_request({"voice_name": "Narrator", "gender": True})


def test_a_storage_link_is_its_own_request_shown_by_its_host_only() -> None:
    link = "https://storage.example/files/a.wav?token=secret"
    request = LinkRequest.of(link, "a preview")
    assert request.what == "downloading a preview from storage.example"
    assert "secret" not in repr(request) and request.may_repeat
    assert not isinstance(request, ApiRequest)
    with pytest.raises(CambLinkRefusedError, match="the link expired or was refused") as caught:
        classify_link_reply(request, 403, {}, b"no", "camb_default")
    assert "secret" not in str(caught.value)


def test_the_0_1_0_builder_and_parser_of_api_still_work_and_warn(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_camb import _deprecated, api
    from airflow_provider_camb.kinds import TEXT_TO_VOICE

    monkeypatch.setattr(_deprecated, "_warned", set())
    with pytest.warns(DeprecationWarning, match=r"TEXT_TO_VOICE\.create_request"):
        old = api.create_text_to_voice_request(TEXT, DESCRIPTION, folder_id="3")
    assert old == TEXT_TO_VOICE.create_request({"text": TEXT, "voice_description": DESCRIPTION, "folder_id": 3})
    with pytest.warns(DeprecationWarning, match="text_to_voice.parse_previews"):
        assert api.parse_previews({"previews": ["https://s.example/a.wav"]}, 7) == ["https://s.example/a.wav"]
    with pytest.raises(CambInputError, match="CAMB needs at least"):
        api.create_text_to_voice_request(TEXT, "short")
