"""Text to sound over real HTTP to the stand-in: input checks, create, wait (worker or triggerer), save the sound.

The sound streams from the API (``RAW_BYTES``, with the key) or comes from CAMB's storage link
(``FILE_URL``, a bearer link fetched without the key); either way it is written whole or not at all.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from airflow_provider_camb.exceptions import (
    CambInputError,
    CambLinkRefusedError,
    CambTaskFailedError,
)
from airflow_provider_camb.operators.text_to_sound import CambTextToSoundOperator, CambTextToSoundResultOperator
from tests.airflow_harness import asset_events
from tests.shared import context, finished_run, logged, result_of, run_id_of, sha256_of, wav_seconds

PROMPT = "Rain on a tin roof"


sound = functools.partial(CambTextToSoundOperator, task_id="sound", prompt=PROMPT)


save = functools.partial(result_of, CambTextToSoundResultOperator)


# --- create: input is checked before anything is sent ---------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prompt": ""}, "prompt must not be empty"),
        ({"prompt": 5}, "prompt must be a string"),
        ({"prompt": "x" * 10_001}, "at most 10000"),
        ({"duration": 0}, "duration must be a positive number"),
        ({"duration": "long"}, "duration must be a positive number"),
        ({"duration": float("inf")}, "duration must be a positive number"),
        ({"audio_type": " "}, "audio_type must be a non-empty string"),
        ({"folder_id": "inbox"}, "folder_id must be a whole number"),
    ],
)
def test_bad_sound_input_is_refused_before_any_request(camb_connection, options, message):
    with pytest.raises(CambInputError, match=message):
        sound(**options).execute(context())
    assert camb_connection.requests() == []


# --- create and wait in the worker ---------------------------------------------------------------------


def test_a_sound_is_made_waited_for_and_saved_both_ways(camb_connection, tmp_path):
    ctx = context()
    run_id = sound(
        duration="4.5", audio_type="sound", wait_for_completion=True, deferrable=False, poll_interval=0.1
    ).execute(ctx)
    assert run_id == run_id_of(ctx["ti"].xcoms["task_id"], "text-to-sound")
    (sent,) = camb_connection.requests("create")
    assert (sent.path, sent.json) == ("/text-to-sound", {"prompt": PROMPT, "duration": 4.5, "audio_type": "sound"})
    camb_connection.clear_requests()
    for output_type in ("RAW_BYTES", "FILE_URL"):
        saved = save(str(run_id), tmp_path, output_type=output_type)
        assert Path(saved["path"]) == tmp_path / f"camb_sound_run_{run_id}.wav"
        assert saved["bytes"] == Path(saved["path"]).stat().st_size
        assert sha256_of(Path(saved["path"])) == saved["sha256"]
        assert wav_seconds(Path(saved["path"])) == pytest.approx(1.0, abs=0.01)
    assert [(r.path, r.query) for r in camb_connection.requests("result")] == [
        (f"/text-to-sound-result/{run_id}", {"output_type": "RAW_BYTES"}),
        (f"/text-to-sound-result/{run_id}", {"output_type": "FILE_URL"}),
    ]
    assert [p.name for p in tmp_path.iterdir()] == [f"camb_sound_run_{run_id}.wav"]


def test_an_error_status_names_the_prompt_as_what_to_review(camb_connection):
    camb_connection.configure(outcome="ERROR", exception_reason="HARMFUL_CONTENT_DETECTED")
    with pytest.raises(CambTaskFailedError, match=r"text-to-sound task .*HARMFUL_CONTENT_DETECTED.*\(prompt\)"):
        sound(wait_for_completion=True, deferrable=False, poll_interval=0.1).execute(context())
    assert camb_connection.request_count("create") == 1


# --- the result: the key, the link, cut-offs ---------------------------------------------------------------


def test_file_url_sound_is_fetched_without_the_key_and_the_link_is_shown_nowhere(camb_connection, tmp_path, capfd):
    run_id = finished_run(camb_connection, "text-to-sound")
    saved = save(run_id, tmp_path, output_type="FILE_URL")
    (result,) = camb_connection.requests("result")
    assert result.headers["x-api-key"] == camb_connection.api_key  # the API host gets the key ...
    (link,) = camb_connection.requests("media")
    assert link.server == "preview" and link.path == f"/media/{run_id}/sound.wav"
    assert "x-api-key" not in link.headers  # ... the storage host never does
    assert camb_connection.api_key not in json.dumps(link.headers)
    logs = logged(capfd)
    assert link.query["token"] not in logs + json.dumps(saved)
    assert f"from localhost to {tmp_path}" in logs  # the host, and only the host


def test_raw_bytes_sound_is_streamed_from_the_api_with_the_key(camb_connection, tmp_path):
    run_id = finished_run(camb_connection, "text-to-sound")
    saved = save(run_id, tmp_path)
    (result,) = camb_connection.requests("result")
    assert result.headers["x-api-key"] == camb_connection.api_key
    assert camb_connection.requests("media") == []
    assert saved["content_type"] == "audio/wav"


@pytest.mark.parametrize("refusal", ["unauthorized", "forbidden"])
def test_a_refused_sound_link_says_it_expired_and_leaves_nothing(camb_connection, tmp_path, refusal):
    run_id = finished_run(camb_connection, "text-to-sound")
    camb_connection.inject(refusal, endpoint="media")
    with pytest.raises(CambLinkRefusedError, match="the link expired or was refused") as caught:
        save(run_id, tmp_path, output_type="FILE_URL")
    assert "token=" not in str(caught.value) and "Check the API key" not in str(caught.value)
    assert camb_connection.request_count("media") == 1  # permanent: not asked again
    assert list(tmp_path.iterdir()) == []


# --- dag.test(): create and wait (deferred or in the worker), then the result into an asset ---------------


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "in the worker"])
def test_make_and_save_a_sound_in_a_dag(create_and_save, camb_connection, tmp_path, deferrable):
    sound = f"prompt={PROMPT!r}, duration='{{{{ 2 + 1 }}}}', audio_type='music'"
    result, run_id, _ = create_and_save(
        CambTextToSoundOperator,
        CambTextToSoundResultOperator,
        sound,
        deferrable,
        save_arguments="output_type='FILE_URL',",
    )
    (sent,) = camb_connection.requests("create")
    assert sent.json == {"prompt": PROMPT, "duration": 3.0, "audio_type": "music"}
    saved = result.xcom("save")
    assert Path(saved["path"]) == tmp_path / f"camb_sound_run_{run_id}.wav"
    assert sha256_of(Path(saved["path"])) == saved["sha256"]
    file = {"path": saved["path"], "sha256": saved["sha256"], "bytes": saved["bytes"]}
    ((asset, task_id, extra),) = asset_events(result.dag_id, result.run_id)
    assert (asset, task_id) == (f"camb_{result.dag_id}", "save")
    assert extra == {"camb_kind": "text-to-sound", "camb_run_id": run_id, "files": [file]}
