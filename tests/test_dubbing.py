"""Dubbing over real HTTP to the stand-in: create, wait (in the worker or the triggerer), save every output
whole or not at all, the links fetched without the key and shown nowhere beyond their host."""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_camb.exceptions import (
    CambConnectionError,
    CambInputError,
    CambLinkRefusedError,
    CambResponseError,
    CambTaskFailedError,
)
from airflow_provider_camb.operators.dubbing import CambDubbingOperator, CambDubbingResultOperator
from tests.airflow_harness import asset_events
from tests.shared import (
    VIDEO,
    context,
    finished_run,
    run_id_of,
    sha256_of,
)


def dub(**options: Any) -> CambDubbingOperator:
    fields: dict[str, Any] = {"video_url": VIDEO, "source_language": 1, "target_languages": ["fr-fr", 31]}
    fields.update(options)
    return CambDubbingOperator(task_id="dub", **fields)


def finished_dub(standin, targets: list[Any]) -> int:
    return finished_run(standin, "dub", target_languages=targets)


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
def test_bad_dubbing_input_is_refused_before_any_request(camb_connection, options, message):
    with pytest.raises(CambInputError, match=message) as caught:
        dub(**options).execute(context())
    assert "s3cr3t" not in str(caught.value)
    assert camb_connection.requests() == []


def test_dubbing_sends_the_documented_body_and_keeps_the_video_link_out_of_logs(camb_connection, capfd):
    dub(target_languages=["fr-fr", "31"], transcription_mode="slow", ai_optimization=True, folder_id="4").execute(
        context()
    )
    (sent,) = camb_connection.requests("create")
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


def test_several_languages_are_saved_per_language_each_whole(camb_connection, tmp_path, capfd):
    run_id = finished_dub(camb_connection, ["fr-fr", 31])
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
    links = camb_connection.requests("media")
    assert len(links) == 4 and all(r.server == "preview" and "x-api-key" not in r.headers for r in links)
    output = capfd.readouterr()
    token = links[0].query["token"]
    assert token not in output.out + output.err + json.dumps(saved)
    assert camb_connection.api_key not in output.out + output.err


def test_one_language_answers_one_object_saved_without_a_language_in_the_names(camb_connection, tmp_path):
    camb_connection.configure(dub_video=False)
    run_id = finished_dub(camb_connection, ["es-es"])
    saved = save_dub(run_id, tmp_path)
    assert list(saved) == ["default"]
    assert saved["default"]["video"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"camb_dub_run_{run_id}_audio.wav",
        f"camb_dub_run_{run_id}_transcript.json",
    ]


def test_a_cut_off_video_leaves_no_file_of_the_result(camb_connection, tmp_path):
    run_id = finished_dub(camb_connection, ["es-es"])
    camb_connection.inject("slow", endpoint="media", times=1, delay=0)  # the audio passes untouched
    camb_connection.inject("truncate", endpoint="media", times=3)  # then every attempt at the video is cut off
    with pytest.raises(CambConnectionError, match="the dubbed video from localhost") as caught:
        save_dub(run_id, tmp_path)
    assert "token" not in str(caught.value)
    names = [p.name for p in tmp_path.iterdir()]
    assert names == []  # all or nothing: the whole audio is not kept without its video; no temporary file


@pytest.mark.parametrize("refusal", ["unauthorized", "forbidden"])
def test_a_refused_dub_link_says_it_expired(camb_connection, tmp_path, refusal):
    run_id = finished_dub(camb_connection, ["es-es"])
    camb_connection.inject(refusal, endpoint="media")
    with pytest.raises(CambLinkRefusedError, match=r"downloading the dubbed audio from localhost .* expired") as caught:
        save_dub(run_id, tmp_path)
    assert "token" not in str(caught.value) and "Check the API key" not in str(caught.value)
    assert camb_connection.request_count("media") == 1  # a refused link is not asked again
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_dub_result_is_reported_without_its_links(camb_connection, tmp_path):
    run_id = finished_dub(camb_connection, ["es-es"])
    audio = "https://storage.example.com/dub/fr.wav?token=audio-s3cr3t"
    video = "file:///srv/dub/fr.mp4?token=video-s3cr3t"  # a scheme no download may follow
    camb_connection.inject("json_body", endpoint="result", payload={"fr-fr": {"audio_url": audio, "video_url": video}})
    message = (
        f"CAMB's reply to fetching the result of CAMB dubbing run {run_id} is not in the documented shape: "
        "a video_url for language 'fr-fr' with scheme 'file'."
    )
    with pytest.raises(CambResponseError) as caught:
        save_dub(run_id, tmp_path)
    assert str(caught.value) == message  # neither link, nor its host, nor its token
    assert camb_connection.request_count("media") == 0
    assert list(tmp_path.iterdir()) == []


def test_the_dub_result_parser_reads_both_shapes_and_refuses_links_of_other_schemes():
    from airflow_provider_camb.exceptions import CambResponseError
    from airflow_provider_camb.kinds.dub import DUB, parse_dub_result

    one = {"audio_url": "https://s/a.wav", "video_url": None, "transcript": [], "extra": 1}
    assert list(parse_dub_result(one, DUB, 1)) == [None]
    assert list(parse_dub_result({"fr": one, "de": one}, DUB, 1)) == ["fr", "de"]
    with pytest.raises(CambResponseError, match="audio_url for language 'fr' with scheme 'file'") as caught:
        parse_dub_result({"fr": {**one, "audio_url": "file:///etc/passwd"}}, DUB, 1)
    assert "passwd" not in str(caught.value)
    assert "s/a.wav" not in repr(parse_dub_result(one, DUB, 1))  # the links never show in a repr


# --- dag.test(): deferred dubbing, then the result --------------------------------------------------------


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "in the worker"])
def test_dub_and_save_in_a_dag(create_and_save, camb_connection, tmp_path, deferrable):
    dub = f"video_url={VIDEO!r}, source_language='en-us', target_languages=['fr-fr', 'de-de']"
    result, run_id, logs = create_and_save(CambDubbingOperator, CambDubbingResultOperator, dub, deferrable)
    saved = result.xcom("save")
    assert set(saved) == {"fr-fr", "de-de"}
    for files in saved.values():
        for file in files.values():
            assert sha256_of(Path(file["path"])) == file["sha256"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"camb_dub_run_{run_id}_{language}_{part}"
        for language in ("fr-fr", "de-de")
        for part in ("audio.wav", "video.mp4", "transcript.json")
    )
    ((asset, task_id, extra),) = asset_events(result.dag_id, result.run_id)
    assert (asset, task_id, extra["camb_kind"], extra["camb_run_id"]) == (
        f"camb_{result.dag_id}",
        "save",
        "dub",
        run_id,
    )
    assert sorted(file["path"] for file in extra["files"]) == sorted(
        file["path"] for files in saved.values() for file in files.values()
    )
    for link in camb_connection.requests("media"):
        assert link.query["token"] not in logs
    assert "s3cr3t" not in logs


def test_an_error_status_while_waiting_in_the_worker_names_the_dubbing_inputs(camb_connection):
    camb_connection.configure(outcome="ERROR", exception_reason="PROCESSING_ERROR")
    with pytest.raises(CambTaskFailedError, match=r"dubbing task .*PROCESSING_ERROR.*\(video_url and languages\)"):
        dub(wait_for_completion=True, deferrable=False, poll_interval=0.1).execute(context())
    assert camb_connection.request_count("create") == 1


def test_waiting_in_the_worker_returns_the_run_id_of_the_dub(camb_connection):
    ctx = context()
    run_id = dub(wait_for_completion=True, deferrable=False, poll_interval=0.1).execute(ctx)
    camb_task_id = ctx["ti"].xcoms["task_id"]
    assert run_id == run_id_of(camb_task_id, "dub")
    assert ctx["ti"].xcoms == {"task_id": camb_task_id, "run_id": run_id}
    assert {r.path for r in camb_connection.requests("status")} == {f"/dub/{camb_task_id}"}
