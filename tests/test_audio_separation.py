"""Audio separation over real HTTP to the stand-in: the media file checked before any request and uploaded;
create, wait (worker or triggerer), both stems downloaded whole through the link policy, or neither."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import pytest

from airflow_provider_camb.exceptions import (
    CambConnectionError,
    CambInputError,
    CambLinkNotAllowedError,
    CambLinkRefusedError,
)
from airflow_provider_camb.operators.audio_separation import (
    CambAudioSeparationOperator,
    CambAudioSeparationResultOperator,
)
from tests.shared import MEDIA, context, finished_run, logged, result_of, sha256_of, wav_seconds, with_media

separate = functools.partial(CambAudioSeparationOperator, task_id="separate")


save = functools.partial(result_of, CambAudioSeparationResultOperator)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs media_file"),
        ({"media_file": "missing.wav"}, "does not exist or is not a file"),
        ({"media_file": "MEDIA", "max_bytes": 4096}, f"is {len(MEDIA)} bytes; max_bytes allows 4096"),
        ({"media_file": "MEDIA", "project_name": " "}, "project_name must not be empty"),
        ({"media_file": "MEDIA", "folder_id": "inbox"}, "folder_id must be a whole number"),
    ],
)
def test_bad_separation_input_is_refused_before_any_request(camb_connection, media, options, message):
    with pytest.raises(CambInputError, match=message):
        separate(**with_media(options, media)).execute(context())
    assert camb_connection.request_count() == 0


def test_the_media_is_uploaded_whole_and_both_stems_are_saved(camb_connection, media, tmp_path, capfd):
    run_id = separate(media_file=str(media), folder_id="4", wait_for_completion=True, poll_interval=0.1).execute(
        context()
    )
    (sent,) = camb_connection.requests("create")
    assert (sent.path, sent.json) == (
        "/audio-separation",
        {
            "folder_id": "4",
            "file_name": "media.wav",
            "file_bytes": len(MEDIA),
            "file_sha256": hashlib.sha256(MEDIA).hexdigest(),
        },
    )
    out = tmp_path / "out"
    saved = save(run_id, out)
    assert set(saved) == {"foreground", "background"}
    for stem, file in saved.items():
        path = Path(file["path"])
        assert path == out / f"camb_stems_run_{run_id}_{stem}.wav"
        assert sha256_of(path) == file["sha256"] and file["bytes"] == path.stat().st_size
        assert wav_seconds(path) == pytest.approx(1.0, abs=0.01)
    links = camb_connection.requests("media")
    assert sorted(link.path for link in links) == [
        f"/media/{run_id}/background.wav",
        f"/media/{run_id}/foreground.wav",
    ]
    assert all("x-api-key" not in link.headers for link in links)  # bearer links: never the key
    logs = logged(capfd)
    assert all(link.query["token"] not in logs + json.dumps(saved) for link in links)


@pytest.mark.parametrize("refusal", ["unauthorized", "forbidden"])
def test_a_refused_stem_link_leaves_neither_stem(camb_connection, tmp_path, refusal):
    run_id = finished_run(camb_connection, "audio-separation")
    camb_connection.inject(refusal, endpoint="media")
    with pytest.raises(CambLinkRefusedError, match="the link expired or was refused") as caught:
        save(run_id, tmp_path)
    assert "token=" not in str(caught.value)
    assert camb_connection.request_count("media") == 1  # permanent: not asked again
    assert list(tmp_path.iterdir()) == []


def test_a_stem_link_off_the_policy_is_not_fetched(camb_connection, tmp_path):
    run_id = finished_run(camb_connection, "audio-separation")
    payload = {"foreground_audio_url": "http://169.254.169.254/latest/x.wav", "background_audio_url": "https://x/b.wav"}
    camb_connection.inject("json_body", endpoint="result", payload=payload)
    with pytest.raises(CambLinkNotAllowedError, match=r"169\.254\.169\.254"):
        save(run_id, tmp_path)
    assert camb_connection.request_count("media") == 0
    assert list(tmp_path.iterdir()) == []


def test_a_second_stem_cut_off_on_every_try_leaves_neither(camb_connection, tmp_path):
    run_id = finished_run(camb_connection, "audio-separation")
    camb_connection.inject("truncate", endpoint="media", times=3, after=1)  # the first stem comes whole
    with pytest.raises(CambConnectionError, match="cut off"):
        save(run_id, tmp_path)
    assert camb_connection.request_count("media") == 4  # 1 whole, then 1 + 2 retries cut off
    assert list(tmp_path.iterdir()) == []  # the whole first stem did not reach its name either


def test_a_stem_cut_off_once_is_fetched_again_whole(camb_connection, tmp_path):
    run_id = finished_run(camb_connection, "audio-separation")
    camb_connection.inject("truncate", endpoint="media")
    saved = save(run_id, tmp_path)
    assert camb_connection.request_count("media") == 3
    assert all(sha256_of(Path(file["path"])) == file["sha256"] for file in saved.values())


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "in the worker"])
def test_separate_and_save_in_a_dag(create_and_save, media, tmp_path, deferrable):
    separation = f"media_file={str(media)!r}"
    result, run_id, _ = create_and_save(
        CambAudioSeparationOperator, CambAudioSeparationResultOperator, separation, deferrable
    )
    saved = result.xcom("save")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"camb_stems_run_{run_id}_background.wav",
        f"camb_stems_run_{run_id}_foreground.wav",
    ]
    assert all(sha256_of(Path(file["path"])) == file["sha256"] for file in saved.values())
