"""A result reaches its final names all at once or not at all; a download to a path never truncates first.

When one file of a result fails (a preview refused, a dubbed video cut off), no file of that result is
left under a final name, and no temporary file either; an existing file is replaced only by a whole one.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_camb.exceptions import CambConnectionError, CambLinkRefusedError
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.operators.text_to_voice import TextToVoiceResultOperator
from tests.shared import memory_folder

FAST_RETRIES = {"retries": 1, "backoff": 0.01, "backoff_max": 0.05}


@pytest.fixture
def camb(camb_standin: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    connection = json.loads(camb_standin.connection_json())
    connection["extra"] = FAST_RETRIES
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_DEFAULT", json.dumps(connection))
    return camb_standin


def finished_run(standin: Any) -> int:
    run_id = CambHook().get_task_status("text-to-voice", standin.add_task(status="SUCCESS")).run_id
    assert isinstance(run_id, int)
    standin.clear_requests()
    return run_id


def download(run_id: int, destination: Any) -> Any:
    return TextToVoiceResultOperator(task_id="download", run_id=run_id, destination=destination).execute({"ti": None})


def second_preview_refused(standin: Any) -> None:
    standin.inject("slow", endpoint="preview", times=1, delay=0)  # the first preview passes untouched
    standin.inject("unauthorized", endpoint="preview", times=1)  # the second is refused


def test_a_refused_second_preview_leaves_no_preview_at_all(camb: Any, tmp_path: Path) -> None:
    run_id = finished_run(camb)
    second_preview_refused(camb)
    with pytest.raises(CambLinkRefusedError):
        download(run_id, tmp_path)
    assert [r.status for r in camb.requests("preview")] == [200, 401]  # the first one did download whole
    assert list(tmp_path.iterdir()) == []  # yet it is not kept without the second; no temporary file either


def test_a_refused_second_preview_leaves_nothing_in_object_storage(camb: Any) -> None:
    folder = ObjectStoragePath(memory_folder())
    run_id = finished_run(camb)
    second_preview_refused(camb)
    with pytest.raises(CambLinkRefusedError):
        download(run_id, str(folder))
    assert not folder.exists() or list(folder.iterdir()) == []


def test_when_a_move_fails_the_files_already_moved_are_taken_back(camb: Any, tmp_path: Path) -> None:
    run_id = finished_run(camb)
    blocker = tmp_path / f"camb_run_{run_id}_preview_1.wav"
    blocker.mkdir()  # a folder where the second preview must go: its move fails
    with pytest.raises(IsADirectoryError):
        download(run_id, tmp_path)
    assert len(camb.requests("preview")) == 2  # both downloaded whole, then the second move failed
    assert [p.name for p in tmp_path.iterdir()] == [blocker.name]  # preview 0 was taken back out


def test_every_preview_lands_when_all_succeed(camb: Any, tmp_path: Path) -> None:
    run_id = finished_run(camb)
    saved = download(run_id, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"camb_run_{run_id}_preview_{i}.wav" for i in (0, 1)]
    assert [Path(file["path"]).stat().st_size for file in saved] == [file["bytes"] for file in saved]


# --- download_preview(url, path) ---------------------------------------------------------------------


@pytest.fixture
def existing(tmp_path: Path) -> Path:
    path = tmp_path / "kept.wav"
    path.write_bytes(b"RIFF" + b"k" * 44140)  # a whole older file
    return path


@pytest.mark.parametrize(
    ("fault", "error"),
    [("unauthorized", CambLinkRefusedError), ("truncate", CambConnectionError)],
)
def test_a_failed_download_to_a_path_leaves_the_existing_file_as_it_was(
    camb: Any, existing: Path, fault: str, error: type[Exception]
) -> None:
    before = existing.read_bytes()
    hook = CambHook()
    link = hook.get_text_to_voice_result(finished_run(camb))[0]
    camb.inject(fault, endpoint="preview", times=5)  # more than the retries
    with pytest.raises(error):
        hook.download_link(link, existing, what="a preview")
    assert existing.read_bytes() == before
    assert [p.name for p in existing.parent.iterdir()] == [existing.name]  # no temporary file left


def test_a_download_to_a_path_replaces_the_file_only_when_whole(camb: Any, existing: Path) -> None:
    hook = CambHook()
    link = hook.get_text_to_voice_result(finished_run(camb))[0]
    camb.inject("truncate", endpoint="preview", times=1)  # the first try is cut off; the retry is whole
    downloaded = hook.download_link(link, existing, what="a preview")
    assert existing.stat().st_size == downloaded.bytes and existing.read_bytes()[:4] == b"RIFF"
    assert existing.read_bytes()[4:5] != b"k"
    assert [p.name for p in existing.parent.iterdir()] == [existing.name]
    assert downloaded == hook.download_link(link, io.BytesIO(), what="a preview")  # the same bytes as a fresh download
