"""A batch survives a killed worker and a killed triggerer: CeleryExecutor, two workers, PostgreSQL, S3 on moto.

One deployment (``tests/deployment.py``): PostgreSQL, Redis as the Celery broker, two Celery workers with
their own temporary folders, scheduler, dag-processor, API server, one triggerer, moto's S3 API as the
destination. One 300-item speech batch (``CambTextToSpeechBatchOperator``):

- after 150 creates, CAMB answers the next create with a 429 asking for two minutes; while the creating
  worker waits that out, it is killed with ``kill -9`` (its whole process group);
- the scheduler notices the dead task (heartbeat timeout), Airflow retries it on the other worker,
  which reads the manifest from S3 and the task state store, creates the other 150 and defers;
- while the batch waits, the triggerer is killed with ``kill -9`` and a new one takes the wait over.

Pass: every item's CAMB task was created exactly once (the stand-in's record), every file is in S3 once,
whole (its sha256 is the manifest's, no temporary object is left), each result was downloaded once, and
the manifest lists every item as succeeded with the tasks CAMB created.
"""

from __future__ import annotations

import collections
import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.deployment import DEPLOYMENT_TESTS, S3_CONN_ID

pytestmark = DEPLOYMENT_TESTS

ITEMS = 300
KILLED_AFTER = 150
BUCKET = "camb-batch"
DAG_ID = "camb_batch_deployment"
DAG = f"""
from datetime import timedelta
import pendulum
from airflow.sdk import DAG
from airflow_provider_camb.operators.batch import CambTextToSpeechBatchOperator

with DAG("{DAG_ID}", start_date=pendulum.datetime(2024, 1, 1), schedule=None) as dag:
    CambTextToSpeechBatchOperator(
        task_id="speak",
        items=[{{"key": f"line-{{i:03d}}", "text": f"Line {{i}} of the book."}} for i in range({ITEMS})],
        voice_id=5,
        language=1,
        destination="s3://{BUCKET}/book/{{{{ run_id }}}}",
        destination_conn_id="{S3_CONN_ID}",
        max_in_flight={ITEMS},
        poll_interval=3,
        deferrable=True,
        resume_margin=10,  # waits 10 s on the worker first; its tasks take 30 s, so the retry defers
        timeout=1200,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
"""


@pytest.fixture(scope="module")
def airflow() -> Iterator[Any]:
    from tests.deployment import AirflowDeployment

    env = {
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",  # notice the killed worker's task soon
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    }
    with AirflowDeployment(
        pending_seconds=30,
        database="postgresql",
        object_storage=True,
        executor="CeleryExecutor",
        celery_workers=2,
        worker_concurrency=2,
        env=env,
    ) as deployment:
        assert deployment.s3 is not None
        deployment.s3.create_bucket(BUCKET)
        deployment.add_dag(f"{DAG_ID}.py", DAG)
        yield deployment


def _wait(what: str, condition: Any, timeout: float, airflow: Any) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        airflow.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out waiting for {what}.\n{airflow.diagnostics()}")
        time.sleep(0.5)
    return found


def test_a_batch_survives_a_killed_worker_and_a_killed_triggerer(airflow):
    started = time.monotonic()
    standin = airflow.standin.client
    standin.inject("rate_limit", endpoint="create", after=KILLED_AFTER, retry_after=120)
    run_id = airflow.trigger(DAG_ID, via="api")

    def refused() -> bool:
        return any(r["status"] == 429 for r in standin.requests("create"))

    _wait("the 429 after half the creates", refused, 300, airflow)
    (row,) = airflow.query(
        "SELECT id FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = 'speak'", (DAG_ID, run_id)
    )
    creator = _wait("the worker running the batch", lambda: airflow.worker_running(str(row["id"])), 60, airflow)
    airflow.stop_component(creator, kill=True)
    killed_worker = time.monotonic()

    def deferred_on_the_other_worker() -> bool:
        return airflow.task_states(DAG_ID, run_id).get("speak") == "deferred"

    _wait("the retry to defer", deferred_on_the_other_worker, 600, airflow)
    deferred = time.monotonic()
    _wait("a trigger row", lambda: airflow.trigger_rows(DAG_ID, run_id, "speak"), 60, airflow)
    airflow.restart_triggerer(kill=True)
    assert airflow.wait_for_run(DAG_ID, run_id, timeout=900) == "success"
    done = time.monotonic()

    (ti,) = [t for t in airflow.task_instances(DAG_ID, run_id) if t["task_id"] == "speak"]
    assert ti["try_number"] == 2  # the killed try, then the one that finished
    result = airflow.xcom(DAG_ID, run_id, "speak")
    assert (result["succeeded"], result["failed"], result["skipped"]) == (ITEMS, 0, 0)

    creates = standin.requests("create")
    made = collections.Counter(r["json"]["text"] for r in creates if r["status"] == 200)
    assert len(made) == ITEMS and set(made.values()) == {1}, "every item's CAMB task created exactly once"
    assert [r["status"] for r in creates].count(429) == 1

    s3 = airflow.s3
    prefix = f"book/{run_id}/"
    keys = s3.keys(BUCKET, prefix)
    manifest_key = f"{prefix}camb_batch_speak.manifest.jsonl"
    assert sorted(keys) == sorted([f"{prefix}line-{i:03d}.wav" for i in range(ITEMS)] + [manifest_key])
    assert s3.unfinished_uploads(BUCKET) == []
    entries = [json.loads(line) for line in s3.read(BUCKET, manifest_key).decode().splitlines()]
    assert len(entries) == ITEMS and {e["status"] for e in entries} == {"succeeded"}
    for entry in entries:
        (file,) = entry["files"]
        data = s3.read(BUCKET, f"{prefix}{entry['key']}.wav")
        assert (len(data), hashlib.sha256(data).hexdigest()) == (file["bytes"], file["sha256"])
    polled = {r["path_id"] for r in standin.requests("status")}
    assert {e["camb_task_id"] for e in entries} <= polled and len({e["camb_task_id"] for e in entries}) == ITEMS
    downloads = collections.Counter(r["path_id"] for r in standin.requests("media"))
    assert len(downloads) == ITEMS and set(downloads.values()) == {1}, "each result downloaded once"
    assert {str(e["run_id"]) for e in entries} == set(downloads)
    print(
        f"\nbatch deployment: killed the worker {killed_worker - started:.0f} s in, the retry deferred "
        f"{deferred - killed_worker:.0f} s later, the run ended {done - deferred:.0f} s after that"
    )
