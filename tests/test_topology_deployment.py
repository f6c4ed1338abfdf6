"""The production topology: Airflow 3 on PostgreSQL, two triggerers, previews written to S3 object storage.

One deployment for the module (``tests/deployment.py``): a PostgreSQL server started for it, scheduler
(LocalExecutor), dag-processor, API server, two triggerers of capacity 200 each, moto's S3 API as the
``aws`` connection ``camb_s3``, and the stand-in as CAMB.

- create -> wait (deferred) -> download to ``s3://`` with ``destination_conn_id`` -> keep a voice read
  back from ``s3://``: the objects are whole, their sha256 is the XCom's, no temporary object is left;
- 300 waits deferred at once are spread over both triggerers (each holds some, read from
  ``trigger.triggerer_id``); one triggerer is killed with ``kill -9`` while they wait; the other takes
  its triggers over; every wait ends exactly once (one try, no task history), every voice's previews are
  downloaded once under their final names, and the preview host saw each preview asked for once.

The CAMB tasks stay PENDING until the test lets them succeed, so every wait really happens in a
triggerer. Run alone with ``pytest -m deployment tests/test_topology_deployment.py``: the 300 waits cost
about 900 task runs (defer, resume, download): the module took 9.5 min wall and 12.6 CPU-minutes on the
shared 2-core machine (the wall times are printed).
"""

from __future__ import annotations

import collections
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deployment import DEPLOYMENT_TESTS, S3_CONN_ID
from tests.deployment_dags import create_wait_download, waits_for_listed_tasks

pytestmark = DEPLOYMENT_TESTS

LOAD = 300
POLL_INTERVAL = 5
CAPACITY = 200  # per triggerer: 300 waits cannot all sit in one
BUCKET = "camb-topology"

VOICES_DAG_ID = "camb_topology_voices"
VOICES_DAG = waits_for_listed_tasks(VOICES_DAG_ID, poll_interval=POLL_INTERVAL, timeout=1800)

S3_DAG_ID = "camb_topology_s3"
S3_DAG = create_wait_download(
    S3_DAG_ID,
    poll_interval=POLL_INTERVAL,
    destination=f"s3://{BUCKET}/voices/{{{{ run_id }}}}",
    destination_conn_id=S3_CONN_ID,
    keep=True,
)


@pytest.fixture(scope="module")
def airflow() -> Iterator[Any]:
    """PostgreSQL, two triggerers, S3 on moto: one deployment for the module."""
    from tests.deployment import AirflowDeployment

    # 16 task processes at a time: enough to keep 2 cores busy, few enough to leave the API server room.
    env = {"AIRFLOW__TRIGGERER__CAPACITY": str(CAPACITY), "AIRFLOW__CORE__PARALLELISM": "16"}
    with AirflowDeployment(
        pending_seconds=12, database="postgresql", triggerers=2, object_storage=True, env=env
    ) as deployment:
        deployment.add_dag(f"{VOICES_DAG_ID}.py", VOICES_DAG)
        deployment.add_dag(f"{S3_DAG_ID}.py", S3_DAG)
        yield deployment


# --- helpers -----------------------------------------------------------------------------------------


def _task_rows(airflow: Any, run_id: str, task_id: str | None = None) -> list[dict[str, Any]]:
    """The run's task instances, read from the database (cheaper than the REST API for 600 of them)."""
    sql = "SELECT task_id, map_index, state, try_number FROM task_instance WHERE dag_id = ? AND run_id = ?"
    rows = [dict(row) for row in airflow.query(sql, (VOICES_DAG_ID, run_id))]
    return [row for row in rows if task_id is None or row["task_id"] == task_id]


def _wait_until_all_claimed(airflow: Any, run_id: str, timeout: float) -> list[dict[str, Any]]:
    """Wait until every sensor is deferred and a triggerer holds each one's trigger; return the trigger rows."""
    deadline = time.monotonic() + timeout
    while True:
        states = collections.Counter(row["state"] for row in _task_rows(airflow, run_id, "wait"))
        claimed = [row for row in airflow.trigger_rows(VOICES_DAG_ID, run_id, "wait") if row["triggerer_id"]]
        if states == {"deferred": LOAD} and len(claimed) == LOAD:
            return claimed
        assert not {"failed", "upstream_failed"} & set(states), f"sensors failed: {states}\n{airflow.diagnostics()}"
        airflow.check_alive()
        assert time.monotonic() < deadline, (
            f"after {timeout} s: {states}, {len(claimed)} claimed\n{airflow.diagnostics()}"
        )
        time.sleep(3)


def _xcoms(airflow: Any, run_id: str, task_id: str) -> dict[int, Any]:
    """``{map_index: value}`` of a mapped task's return values, read from the database."""
    sql = "SELECT map_index, value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = 'return_value'"
    rows = airflow.query(sql, (VOICES_DAG_ID, run_id, task_id))
    return {
        row["map_index"]: json.loads(row["value"]) if isinstance(row["value"], (str, bytes)) else row["value"]
        for row in rows
    }


def _polled_since(airflow: Any, camb_task_ids: set[str], since: float) -> set[str]:
    return {
        r["path_id"] for r in airflow.standin_requests("status") if r["time"] > since and r["path_id"] in camb_task_ids
    }


# --- S3 object storage in the deployment ------------------------------------------------------------


def test_previews_go_to_s3_whole_and_a_voice_is_kept_from_there(airflow: Any) -> None:
    airflow.s3.create_bucket(BUCKET)
    run_id = airflow.trigger(S3_DAG_ID, via="api")
    assert airflow.wait_for_run(S3_DAG_ID, run_id, timeout=300) == "success", airflow.diagnostics()

    camb_run_id = airflow.xcom(S3_DAG_ID, run_id, "wait")
    saved = airflow.xcom(S3_DAG_ID, run_id, "download")
    names = [f"voices/{run_id}/camb_run_{camb_run_id}_preview_{index}.wav" for index in range(2)]
    assert [entry["path"] for entry in saved] == [f"s3://{S3_CONN_ID}@{BUCKET}/{name}" for name in names]
    assert airflow.s3.keys(BUCKET) == names  # no temporary object left
    assert airflow.s3.unfinished_uploads(BUCKET) == []
    for entry, name in zip(saved, names, strict=True):
        data = airflow.s3.read(BUCKET, name)
        assert len(data) == entry["bytes"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    (kept,) = airflow.standin.client.requests("custom_voice")
    assert kept["json"]["file_sha256"] == saved[1]["sha256"]  # read back from s3:// through camb_s3


# --- 300 waits over two triggerers, one killed --------------------------------------------------------


def test_waits_spread_over_two_triggerers_survive_one_killed_and_end_exactly_once(airflow: Any, tmp_path: Path) -> None:
    first, second = airflow.triggerer_job_id("triggerer"), airflow.triggerer_job_id("triggerer-2")
    camb_task_ids = [airflow.standin.client.add_task(status="PENDING") for _ in range(LOAD)]
    destination = tmp_path / "voices"

    started = time.monotonic()
    run_id = airflow.trigger(
        VOICES_DAG_ID, {"camb_task_ids": camb_task_ids, "destination": str(destination)}, via="api"
    )
    claimed = _wait_until_all_claimed(airflow, run_id, timeout=1200)
    all_deferred = time.monotonic() - started
    held = collections.Counter(row["triggerer_id"] for row in claimed)
    assert set(held) == {first, second}, held  # each triggerer runs some of the waits
    assert max(held.values()) <= CAPACITY

    orphaned = {camb_task_ids[row["map_index"]] for row in claimed if row["triggerer_id"] == second}
    airflow.stop_component("triggerer-2", kill=True)  # kill -9 while every wait is deferred
    killed = time.time()
    for camb_task_id in camb_task_ids:
        airflow.standin.client.add_task(task_id=camb_task_id, status="SUCCESS")

    assert airflow.wait_for_run(VOICES_DAG_ID, run_id, timeout=1500) == "success", airflow.diagnostics()
    wall = time.monotonic() - started
    print(
        f"\nTOPOLOGY: {LOAD} waits on 2 triggerers ({dict(held)} by job id), all deferred and claimed "
        f"{all_deferred:.0f} s after the trigger; triggerer job {second} killed; run done {wall:.0f} s after "
        "the trigger"
    )

    # The survivor took the killed triggerer's waits over: they were polled after the kill.
    assert _polled_since(airflow, orphaned, killed) == orphaned

    # Every wait and every download ended exactly once: one try each, nothing retried or re-run.
    instances = [row for row in _task_rows(airflow, run_id) if row["task_id"] != "camb_task_ids"]
    assert len(instances) == 2 * LOAD
    assert {(row["state"], row["try_number"]) for row in instances} == {("success", 1)}
    history = airflow.query(
        "SELECT count(*) FROM task_instance_history WHERE dag_id = ? AND run_id = ?", (VOICES_DAG_ID, run_id)
    )
    assert history[0][0] == 0

    # Every voice's previews, once each, under their final names; nothing else in the folder.
    run_ids = _xcoms(airflow, run_id, "wait")
    assert sorted(run_ids) == list(range(LOAD)) and len(set(run_ids.values())) == LOAD
    expected = {f"camb_run_{camb_run}_preview_{index}.wav" for camb_run in run_ids.values() for index in range(2)}
    assert {path.name for path in destination.iterdir()} == expected
    saved = _xcoms(airflow, run_id, "download")
    assert sorted(entry["path"] for entries in saved.values() for entry in entries) == sorted(
        str(destination / name) for name in expected
    )

    # The preview host saw each preview asked for exactly once: no repeated attempt downloaded one again.
    ours = {str(camb_run) for camb_run in run_ids.values()}
    previews = collections.Counter(
        r["path"] for r in airflow.standin_requests("preview") if r["path"].split("/")[2] in ours
    )
    assert sorted(previews) == sorted(f"/previews/{camb_run}/{index}.wav" for camb_run in ours for index in range(2))
    assert set(previews.values()) == {1}, {path: n for path, n in previews.items() if n != 1}
    results = collections.Counter(r["path_id"] for r in airflow.standin_requests("result") if r["path_id"] in ours)
    assert sorted(results) == sorted(ours)
    assert set(results.values()) == {1}
