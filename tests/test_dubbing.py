"""Dubbing and text to sound over real HTTP to the stand-in: create, wait, save every output whole or not at all."""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_camb.exceptions import CambConnectionError, CambInputError, CambLinkRefusedError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.operators.dubbing import CambDubbingOperator, CambDubbingResultOperator
from airflow_provider_camb.operators.text_to_sound import CambTextToSoundOperator, CambTextToSoundResultOperator
from tests.test_operators import FAST_RETRIES, _ids, context, sha256_of

VIDEO = "https://media.example.com/films/trailer.mp4?signature=s3cr3t"


@pytest.fixture
def camb(camb_standin, monkeypatch):
    """The stand-in as ``camb_default``, with fast retries (2 retries, tiny backoff), as in test_operators."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_CAMB_DEFAULT", json.dumps({**json.loads(camb_standin.connection_json()), "extra": FAST_RETRIES})
    )
    return camb_standin


def dub(**options: Any) -> CambDubbingOperator:
    fields: dict[str, Any] = {"video_url": VIDEO, "source_language": 1, "target_languages": ["fr-fr", 31]}
    fields.update(options)
    return CambDubbingOperator(task_id="dub", **fields)


def finished_dub(standin, targets: list[Any]) -> int:
    task_id = standin.add_task(kind="dub", status="SUCCESS", request={"target_languages": targets})
    run_id = CambHook().get_task_status("dub", task_id).run_id
    assert isinstance(run_id, int)
    standin.clear_requests()
    return run_id


def save_dub(run_id: Any, destination: Any) -> dict[str, Any]:
    return CambDubbingResultOperator(task_id="save", run_id=run_id, destination=destination).execute(context())


# --- create ---------------------------------------------------------------------------------------------

BAD_DUB = {
    "no url": ({"video_url": ""}, "video_url must be a non-empty http"),
    "not http": ({"video_url": "ftp://media.example.com/a.mp4"}, "scheme 'ftp'"),
    "source a sentence": ({"source_language": "English please"}, "source_language must be a CAMB language"),
    "no targets": ({"target_languages": []}, "at least one language"),
    "a target twice": ({"target_languages": ["fr-fr", "fr-fr"]}, "names a language twice"),
    "a bool target": ({"target_languages": [True]}, r"target_languages\[0\] must be"),
    "bad mode": ({"transcription_mode": "turbo"}, "transcription_mode must be one of"),
    "tracks not numbers": ({"selected_audio_tracks": ["a"]}, r"selected_audio_tracks\[0\] must be"),
    "flag not a bool": ({"ai_optimization": "yes"}, "ai_optimization must be True or False"),
}


@pytest.mark.parametrize(("options", "message"), BAD_DUB.values(), ids=BAD_DUB)
def test_bad_dubbing_input_is_refused_before_any_request(camb, options, message):
    with pytest.raises(CambInputError, match=message) as caught:
        dub(**options).execute(context())
    assert "s3cr3t" not in str(caught.value)
    assert camb.requests() == []


def test_dubbing_sends_the_documented_body_and_keeps_the_video_link_out_of_logs(camb, capfd):
    dub(target_languages=["fr-fr", "31"], transcription_mode="slow", ai_optimization=True, folder_id="4").execute(
        context()
    )
    (sent,) = camb.requests("create")
    assert sent.path == "/dub"
    assert sent.json == {
        "video_url": VIDEO,
        "source_language": 1,
        "target_languages": ["fr-fr", 31],
        "transcription_mode": "slow",
        "ai_optimization": True,
        "folder_id": 4,
    }
    output = capfd.readouterr()
    assert "s3cr3t" not in output.out + output.err


# --- result -----------------------------------------------------------------------------------------------


def test_several_languages_are_saved_per_language_each_whole(camb, tmp_path, capfd):
    run_id = finished_dub(camb, ["fr-fr", 31])
    saved = save_dub(run_id, tmp_path)
    assert set(saved) == {"fr-fr", "31"}
    for language, files in saved.items():
        stem = tmp_path / f"camb_dub_run_{run_id}_{language}"
        assert Path(files["audio"]["path"]) == Path(f"{stem}_audio.wav")
        assert Path(files["video"]["path"]) == Path(f"{stem}_video.mp4")
        assert Path(files["transcript"]["path"]) == Path(f"{stem}_transcript.json")
        for file in files.values():
            assert sha256_of(Path(file["path"])) == file["sha256"]
        with wave.open(files["audio"]["path"]) as audio:
            assert audio.getnframes() == 22050
        assert Path(files["video"]["path"]).read_bytes()[4:8] == b"ftyp"
        lines = json.loads(Path(files["transcript"]["path"]).read_text())
        assert lines[0]["text"] == f"Hello ({language})." and lines[0]["speaker"] == "SPEAKER_0"
    assert len(list(tmp_path.iterdir())) == 6
    links = camb.requests("media")
    assert len(links) == 4 and all(r.server == "preview" and "x-api-key" not in r.headers for r in links)
    output = capfd.readouterr()
    token = links[0].query["token"]
    assert token not in output.out + output.err + json.dumps(saved)
    assert camb.api_key not in output.out + output.err


def test_one_language_answers_one_object_saved_without_a_language_in_the_names(camb, tmp_path):
    camb.configure(dub_video=False)
    run_id = finished_dub(camb, ["es-es"])
    saved = save_dub(run_id, tmp_path)
    assert list(saved) == ["default"]
    assert saved["default"]["video"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"camb_dub_run_{run_id}_audio.wav",
        f"camb_dub_run_{run_id}_transcript.json",
    ]


def test_a_cut_off_video_leaves_no_file_of_the_result(camb, tmp_path):
    run_id = finished_dub(camb, ["es-es"])
    camb.inject("slow", endpoint="media", times=1, delay=0)  # the audio passes untouched
    camb.inject("truncate", endpoint="media", times=3)  # then every attempt at the video is cut off
    with pytest.raises(CambConnectionError, match="the dubbed video from localhost") as caught:
        save_dub(run_id, tmp_path)
    assert "token" not in str(caught.value)
    names = [p.name for p in tmp_path.iterdir()]
    assert names == []  # all or nothing: the whole audio is not kept without its video; no temporary file


def test_a_refused_dub_link_says_it_expired(camb, tmp_path):
    run_id = finished_dub(camb, ["es-es"])
    camb.inject("unauthorized", endpoint="media")
    with pytest.raises(CambLinkRefusedError, match=r"downloading the dubbed audio from localhost .* expired"):
        save_dub(run_id, tmp_path)


def test_an_unreadable_dub_result_is_reported_without_its_links(camb, tmp_path):
    run_id = finished_dub(camb, ["es-es"])
    camb.inject("malformed_json", endpoint="result", times=3)
    with pytest.raises(Exception, match=f"dubbing run {run_id}"):
        save_dub(run_id, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_dub_result_parser_reads_both_shapes_and_refuses_links_of_other_schemes():
    from airflow_provider_camb.api import parse_dub_result
    from airflow_provider_camb.exceptions import CambResponseError

    one = {"audio_url": "https://s/a.wav", "video_url": None, "transcript": [], "extra": 1}
    assert list(parse_dub_result(one, 1)) == [None]
    assert list(parse_dub_result({"fr": one, "de": one}, 1)) == ["fr", "de"]
    with pytest.raises(CambResponseError, match="audio_url for language 'fr' with scheme 'file'") as caught:
        parse_dub_result({"fr": {**one, "audio_url": "file:///etc/passwd"}}, 1)
    assert "passwd" not in str(caught.value)
    assert "s/a.wav" not in repr(parse_dub_result(one, 1))  # the links never show in a repr


# --- text to sound ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prompt": ""}, "prompt must not be empty"),
        ({"duration": 0}, "duration must be a positive number"),
        ({"duration": "long"}, "duration must be a positive number"),
        ({"duration": float("inf")}, "duration must be a positive number"),
        ({"audio_type": " "}, "audio_type must be a non-empty string"),
    ],
)
def test_bad_sound_input_is_refused_before_any_request(camb, options, message):
    fields = {"prompt": "Rain on a tin roof", **options}
    with pytest.raises(CambInputError, match=message):
        CambTextToSoundOperator(task_id="sound", **fields).execute(context())
    assert camb.requests() == []


def test_a_sound_is_made_waited_for_and_saved(camb, tmp_path):
    run_id = CambTextToSoundOperator(
        task_id="sound",
        prompt="Rain on a tin roof",
        duration="4.5",
        audio_type="sound",
        wait_for_completion=True,
        deferrable=False,
        poll_interval=0.1,
    ).execute(context())
    (sent,) = camb.requests("create")
    assert sent.path == "/text-to-sound"
    assert sent.json == {"prompt": "Rain on a tin roof", "duration": 4.5, "audio_type": "sound"}
    for output_type in ("RAW_BYTES", "FILE_URL"):
        saved = CambTextToSoundResultOperator(
            task_id="save", run_id=str(run_id), destination=tmp_path, output_type=output_type
        ).execute(context())
        assert Path(saved["path"]) == tmp_path / f"camb_sound_run_{run_id}.wav"
        assert sha256_of(Path(saved["path"])) == saved["sha256"]
    assert [r.path for r in camb.requests("result")] == [f"/text-to-sound-result/{run_id}"] * 2
    assert len(camb.requests("media")) == 1


# --- dag.test(): deferred dubbing, then the result --------------------------------------------------------

DUB_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_camb.operators.dubbing import CambDubbingOperator, CambDubbingResultOperator

with DAG("{dag_id}", start_date=pendulum.datetime(2024, 1, 1), schedule=None) as dag:
    dub = CambDubbingOperator(
        task_id="dub", video_url={video!r}, source_language="en-us", target_languages=["fr-fr", "de-de"],
        wait_for_completion=True, deferrable=True, poll_interval=0.3,
    )
    CambDubbingResultOperator(task_id="save", run_id=dub.output, destination={destination!r})
"""


def test_dub_and_save_in_a_dag_deferred(run_dag, camb_connection, tmp_path, capfd):
    result = run_dag.run(DUB_DAG.format(dag_id=f"dub_flow_{next(_ids)}", video=VIDEO, destination=str(tmp_path)))
    assert result.task_states == {"dub": "success", "save": "success"}
    saved = result.xcom("save")
    assert set(saved) == {"fr-fr", "de-de"}
    assert all(Path(files["audio"]["path"]).is_file() for files in saved.values())
    output = capfd.readouterr()
    for link in camb_connection.requests("media"):
        assert link.query["token"] not in output.out + output.err
    assert "s3cr3t" not in output.out + output.err
