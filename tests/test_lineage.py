"""Lineage: the OpenLineage events ``dag.test()`` emits for every operator, and the asset events' extras.

One flow (create and wait in the worker, create and wait in the triggerer, download previews into an
asset, keep a voice) runs once per module with ``dag.test()`` in a child process whose OpenLineage
provider writes every event to a file (its ``file`` transport): OpenLineage reads its configuration once
per process, so the rest of the suite runs without it. The tests read that file and Airflow's database.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_camb._lineage import camb_namespace, stored_file
from airflow_provider_camb.operators.text_to_voice import TextToVoiceResultOperator
from airflow_provider_camb.testing.server import CambStandIn
from tests.airflow_harness import DagRunResult, asset_events, read_dag_run
from tests.shared import DESCRIPTION, context

ASSET = "camb_lineage_test_voices"

FLOW_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG, Asset
from airflow_provider_camb.operators.text_to_voice import (
    CambCreateCustomVoiceOperator, TextToVoiceOperator, TextToVoiceResultOperator,
)

with DAG("camb_lineage_flow", start_date=pendulum.datetime(2024, 1, 1), schedule=None) as dag:
    create = TextToVoiceOperator(
        task_id="create", text="Hello there.", voice_description={description!r},
        wait_for_completion=True, deferrable=False, poll_interval=0.2,
    )
    create_deferred = TextToVoiceOperator(
        task_id="create_deferred", text="Hello again.", voice_description={description!r},
        wait_for_completion=True, deferrable=True, poll_interval=0.2,
    )
    download = TextToVoiceResultOperator(
        task_id="download", run_id=create.output, destination={destination!r}, outlets=[Asset({asset!r})],
    )
    keep = CambCreateCustomVoiceOperator(
        task_id="keep", preview=0, previews=download.output, run_id=create.output, voice_name="Narrator", gender=2,
    )
"""

RUN_DAG = """
import importlib.util, sys
import airflow
spec = importlib.util.spec_from_file_location("camb_lineage_flow", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
if airflow.__version__.startswith("2."):
    module.dag.sync_to_db()  # Airflow 2's dag.test() skips what the DAG processor does: register the datasets
print("CAMB_DAG_RUN_ID=" + module.dag.test().run_id)
"""


@dataclass
class Flow:
    """What the flow left: the DAG run, the OpenLineage events, the stand-in it talked to."""

    result: DagRunResult
    events: list[dict[str, Any]]
    standin: CambStandIn
    destination: Path

    def complete(self, task_id: str) -> dict[str, Any]:
        """The COMPLETE event of one task."""
        (event,) = [
            e
            for e in self.events
            if e["eventType"] == "COMPLETE" and e["job"]["name"] == f"camb_lineage_flow.{task_id}"
        ]
        return event


def datasets(event: dict[str, Any], side: str) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in event[side]]


def read_run_when_visible(dag_id: str, run_id: str, timeout: float = 30.0) -> DagRunResult:
    """The child's run as this process's database session sees it: asked again until the row shows.

    Once, on Airflow 2.11 at load average 30, the first read found no row for a run the child had
    just finished (alone, the module passed); a fresh session a moment later is given the chance.
    """
    from sqlalchemy.exc import NoResultFound

    deadline = time.monotonic() + timeout
    while True:
        try:
            return read_dag_run(dag_id, run_id)
        except NoResultFound:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(scope="module")
def flow(airflow_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    folder = tmp_path_factory.mktemp("lineage")
    events = folder / "events.jsonl"
    dag_file = airflow_home / "dags" / "camb_lineage_flow.py"
    dag_file.write_text(FLOW_DAG.format(description=DESCRIPTION, destination=str(folder / "voices"), asset=ASSET))
    with CambStandIn(pending_seconds=0.5) as standin:
        env = {
            **os.environ,
            "AIRFLOW_CONN_CAMB_DEFAULT": standin.connection_json(),
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(events), "append": True}
            ),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "camb-tests",
        }
        child = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(RUN_DAG), str(dag_file)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert child.returncode == 0, child.stderr[-4000:]
        (line,) = [line for line in child.stdout.splitlines() if line.startswith("CAMB_DAG_RUN_ID=")]
        result = read_run_when_visible("camb_lineage_flow", line.removeprefix("CAMB_DAG_RUN_ID="))
        written = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
        yield Flow(result, written, standin, folder / "voices")


def test_the_flow_succeeds(flow: Flow) -> None:
    assert flow.result.task_states == dict.fromkeys(("create", "create_deferred", "download", "keep"), "success")


def test_the_create_operator_reports_the_task_and_the_run_it_made(flow: Flow) -> None:
    namespace = camb_namespace(flow.standin.base_url)
    for task_id in ("create", "create_deferred"):  # the second one resumed after the triggerer
        event = flow.complete(task_id)
        camb_task_id = flow.result.xcom(task_id, "task_id")
        run_id = flow.result.xcom(task_id)
        assert datasets(event, "inputs") == []
        assert datasets(event, "outputs") == [
            (namespace, f"text-to-voice/task/{camb_task_id}"),
            (namespace, f"text-to-voice/run/{run_id}"),
        ]


def test_the_result_operator_reads_the_run_and_reports_each_file_written(flow: Flow) -> None:
    event = flow.complete("download")
    run_id = flow.result.xcom("create")
    saved = flow.result.xcom("download")
    assert datasets(event, "inputs") == [(camb_namespace(flow.standin.base_url), f"text-to-voice/run/{run_id}")]
    assert datasets(event, "outputs") == [("file", str(Path(ObjectStoragePath(f["path"]).path))) for f in saved]
    assert [o["name"] for o in event["outputs"]] == [
        str(flow.destination / f"camb_run_{run_id}_preview_{i}.wav") for i in range(2)
    ]
    sizes = [o["outputFacets"]["outputStatistics"] for o in event["outputs"]]
    assert [(s["size"], s["fileCount"]) for s in sizes] == [(f["bytes"], 1) for f in saved]


def test_the_custom_voice_operator_reads_the_preview_and_run_and_reports_the_voice(flow: Flow) -> None:
    event = flow.complete("keep")
    namespace = camb_namespace(flow.standin.base_url)
    first = flow.result.xcom("download")[0]
    assert datasets(event, "inputs") == [
        ("file", str(Path(ObjectStoragePath(first["path"]).path))),
        (namespace, f"text-to-voice/run/{flow.result.xcom('create')}"),
    ]
    assert datasets(event, "outputs") == [(namespace, f"voice/{flow.result.xcom('keep')}")]


def test_the_camb_namespace_is_the_api_host_and_no_event_holds_the_key(flow: Flow) -> None:
    assert camb_namespace(flow.standin.base_url) == f"camb://127.0.0.1:{flow.standin.port}"
    assert flow.standin.api_key not in json.dumps(flow.events)


def test_the_asset_event_carries_the_run_id_and_each_path_with_its_sha256(flow: Flow) -> None:
    saved = flow.result.xcom("download")
    ((name, task_id, extra),) = asset_events("camb_lineage_flow", flow.result.run_id)
    assert (name, task_id) == (ASSET, "download")
    assert extra["camb_kind"] == "text-to-voice"
    assert extra["camb_run_id"] == flow.result.xcom("create")
    assert extra["files"] == [{"path": f["path"], "sha256": f["sha256"], "bytes": f["bytes"]} for f in saved]
    for file in extra["files"]:  # the digests are those of the files on disk
        data = Path(ObjectStoragePath(file["path"]).path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == file["sha256"]


def test_files_in_object_storage_are_reported_in_their_bucket_namespace(
    camb_standin: CambStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_camb.hooks.camb import CambHook
    from tests.shared import memory_folder

    monkeypatch.setenv("AIRFLOW_CONN_CAMB_DEFAULT", camb_standin.connection_json())
    run_id = CambHook().get_task_status("text-to-voice", camb_standin.add_task(status="SUCCESS")).run_id
    folder = memory_folder()  # memory://camb-tests/<uuid>: not local, like s3://bucket/prefix
    operator = TextToVoiceResultOperator(task_id="download", run_id=run_id, destination=folder)
    operator.execute({"ti": None})  # type: ignore[arg-type]

    lineage = operator.get_openlineage_facets_on_complete(None)

    prefix = folder.removeprefix("memory://camb-tests/")
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        (camb_namespace(camb_standin.base_url), f"text-to-voice/run/{run_id}")
    ]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [
        ("memory://camb-tests", f"{prefix}/camb_run_{run_id}_preview_{i}.wav") for i in range(2)
    ]


#: A stored file's path, and its dataset (namespace, name) by OpenLineage's conventions.
DATASETS = {
    "/data/voices/a.wav": ("file", "/data/voices/a.wav"),
    "file:///data/voices/a.wav": ("file", "/data/voices/a.wav"),
    "s3://voices-bucket/camb/a.wav": ("s3://voices-bucket", "camb/a.wav"),
    "s3://aws_prod@voices-bucket/camb/a.wav": ("s3://voices-bucket", "camb/a.wav"),
    "gs://bucket/a%20b.wav": ("gs://bucket", "a%20b.wav"),
    "memory:///bucket/a.wav": ("memory://bucket", "a.wav"),  # how Airflow 2 spells a memory:// path
}


@pytest.mark.parametrize("path", DATASETS)
def test_files_are_named_by_openlineage_conventions(path: str) -> None:
    dataset = stored_file(path)
    assert (dataset.namespace, dataset.name) == DATASETS[path]


def test_the_camb_namespace_never_holds_credentials_or_the_path() -> None:
    assert camb_namespace("https://user:secret@Client.CAMB.ai/apis") == "camb://client.camb.ai"


def test_without_the_openlineage_provider_nothing_fails_and_nothing_is_logged(
    camb_standin: CambStandIn, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Not a line, at any level, from anywhere: the README's promise."""
    from airflow_provider_camb.hooks.camb import CambHook

    monkeypatch.setenv("AIRFLOW_CONN_CAMB_DEFAULT", camb_standin.connection_json())
    run_id = CambHook().get_task_status("text-to-voice", camb_standin.add_task(status="SUCCESS")).run_id
    operator = TextToVoiceResultOperator(task_id="download", run_id=run_id, destination=str(tmp_path))
    assert len(operator.execute({"ti": None})) == 2  # type: ignore[arg-type]
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    for module in ("airflow.providers.openlineage", "airflow.providers.openlineage.extractors"):
        monkeypatch.setitem(sys.modules, module, None)  # importing it now fails as if it were not installed

    assert operator.get_openlineage_facets_on_complete(None) is None
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == []


def test_importing_the_operators_imports_nothing_of_openlineage() -> None:
    code = (
        "import sys, airflow; loaded = {m for m in sys.modules if 'openlineage' in m}; "
        "import airflow_provider_camb.operators.text_to_voice; "
        "print(sorted(m for m in sys.modules if 'openlineage' in m and m not in loaded))"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert child.stdout.strip() == "[]"


# --- every kind reports its task, run and files (operators run directly against the stand-in) ------------


def _lineage(operator: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str, int | None]]]:
    """(inputs, outputs with the size of each written file) that the operator reports to OpenLineage."""
    lineage = operator.get_openlineage_facets_on_complete(None)
    outputs = []
    for dataset in lineage.outputs:
        statistics = dataset.outputFacets.get("outputStatistics")
        outputs.append((dataset.namespace, dataset.name, None if statistics is None else statistics.size))
    return [(d.namespace, d.name) for d in lineage.inputs], outputs


@pytest.mark.parametrize(
    ("module", "create", "arguments", "kind"),
    [
        ("text_to_speech", "CambTextToSpeechOperator", {"text": "Hello.", "voice_id": 5000, "language": 1}, "tts"),
        ("text_to_sound", "CambTextToSoundOperator", {"prompt": "Rain on a tin roof"}, "text-to-sound"),
        (
            "dubbing",
            "CambDubbingOperator",
            {"video_url": "https://media.example.com/a.mp4", "source_language": 1, "target_languages": [76, 31]},
            "dub",
        ),
    ],
    ids=["speech", "sound", "dubbing"],
)
def test_every_kind_reports_the_task_and_run_it_made_and_the_files_it_wrote(
    camb_connection: CambStandIn, tmp_path: Path, module: str, create: str, arguments: dict[str, Any], kind: str
) -> None:
    operators = importlib.import_module(f"airflow_provider_camb.operators.{module}")
    result_class = {"tts": "CambTextToSpeechResultOperator", "text-to-sound": "CambTextToSoundResultOperator"}
    namespace = camb_namespace(camb_connection.base_url)
    creator = getattr(operators, create)(
        task_id="create", wait_for_completion=True, deferrable=False, poll_interval=0.1, **arguments
    )
    ctx = context()
    run_id = creator.execute(ctx)
    camb_task_id = ctx["ti"].xcoms["task_id"]
    assert _lineage(creator) == (
        [],
        [(namespace, f"{kind}/task/{camb_task_id}", None), (namespace, f"{kind}/run/{run_id}", None)],
    )

    saver = getattr(operators, result_class.get(kind, "CambDubbingResultOperator"))(
        task_id="save", run_id=run_id, destination=str(tmp_path)
    )
    saved = saver.execute(context())
    files = [saved] if kind != "dub" else [f for language in saved.values() for f in language.values() if f]
    inputs, outputs = _lineage(saver)
    assert inputs == [(namespace, f"{kind}/run/{run_id}")]
    assert sorted(outputs) == sorted(("file", file["path"], file["bytes"]) for file in files)
    assert len(outputs) == (6 if kind == "dub" else 1)  # dubbing: audio, video and transcript per language
