"""A catalogue of voices in a real deployment: (a) mapped create -> wait -> download against (b) one batch task.

A real Airflow 3 deployment (``tests/deployment.py``: scheduler with LocalExecutor, triggerer,
dag-processor, API server, PostgreSQL; the CAMB stand-in as CAMB) speaks N texts, in the same run:

- ``a``: today's mapped DAG: ``CambTextToSpeechOperator`` -> ``CambTaskSensor`` (deferred, ending in the
  triggerer) -> ``CambTextToSpeechResultOperator``, each mapped over the N texts (``max_map_length`` raised);
- ``b``: one ``CambTextToSpeechBatchOperator`` task over the same N texts (``max_in_flight=1000``).

The stand-in's tasks stay pending a random 3 to 20 s from their creation, and it allows the API key 100
requests per second (429 with Retry-After beyond that), as the issue sets. Figures per (design, N): wall
time from trigger to the run's end; CPU-seconds per voice above the deployment's idle rate (machine-wide
and of the deployment's own process tree); task instances and worker starts; API requests per voice and
the share the rate limit refused (the stand-in's counts); failures; for (b) the peak RSS of the batch's
task process. The floor of (b)'s wall time: the rate limit lets N creates and N final status reads through
in ``2 N / 100`` s at best, and the last task created is pending up to 20 s more, so ``2 N / 100 + 20`` s.

    .venv/bin/python -m benchmarks.batch [--sizes 1000] [--designs a b] [--batch-only-sizes 10000]

Writes ``results/batch.json`` and ``results/batch.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import RESULTS, TMP, against_design_a, design_run, machine, markdown_table, rounded, write_json
from benchmarks.deployment import rates, sample, task_log_counts

PENDING = (3.0, 20.0)
RATE_LIMIT = 100
POLL_INTERVAL = 5
IDLE_SECONDS = 20.0
DESIGNS = {"a": "mapped create -> wait -> download", "b": "one batch task"}

_HEAD = """
import pendulum
from airflow.sdk import DAG, task
from airflow_provider_camb.operators.batch import CambTextToSpeechBatchOperator
from airflow_provider_camb.operators.text_to_speech import CambTextToSpeechOperator, CambTextToSpeechResultOperator
from airflow_provider_camb.sensors.camb_task import CambTaskSensor

TEXTS = [f"Line {{i}} of the catalogue, read aloud." for i in range({n})]
"""
_MAPPED = (
    _HEAD
    + """
with DAG("{dag_id}", start_date=pendulum.datetime(2024, 1, 1), schedule=None, max_active_tasks=1024) as dag:

    @task
    def texts() -> list:
        return TEXTS

    create = CambTextToSpeechOperator.partial(task_id="create", voice_id=5, language=1).expand(text=texts())
    wait = CambTaskSensor.partial(
        task_id="wait", kind="tts", poll_interval={poll}, deferrable=True, timeout=3600
    ).expand(camb_task_id=create.output)
    CambTextToSpeechResultOperator.partial(task_id="download", destination={destination!r}).expand(run_id=wait.output)
"""
)
_BATCH = (
    _HEAD
    + """
with DAG("{dag_id}", start_date=pendulum.datetime(2024, 1, 1), schedule=None) as dag:
    CambTextToSpeechBatchOperator(
        task_id="speak",
        items=[{{"key": f"line-{{i:05d}}", "text": text}} for i, text in enumerate(TEXTS)],
        voice_id=5,
        language=1,
        destination={destination!r},
        max_in_flight=1000,
        poll_interval={poll},
        deferrable=True,
        timeout=7200,{batch_arguments}
    )
"""
)


def floor_seconds(n: int) -> float:
    """The least wall time the rate limit and the task durations allow (see the module docstring)."""
    return 2 * n / RATE_LIMIT + PENDING[1]


class _PeakRss:
    """Samples, every second, the RSS of the processes whose command line names ``needle`` (a task instance id)."""

    def __init__(self) -> None:
        self.needle: str | None = None
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.wait(1.0):
            if self.needle is None:
                continue
            for process in psutil.process_iter(["cmdline", "memory_info"]):
                cmdline = " ".join(process.info["cmdline"] or ())
                if self.needle in cmdline and process.info["memory_info"] is not None:
                    self.peak = max(self.peak, process.info["memory_info"].rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def run_design(airflow: Any, design: str, n: int, resume_margin: float | None = None) -> dict[str, Any]:
    dag_id = f"bench_batch_{design}_{n}"
    destination = TMP / "batch" / f"{dag_id}_{time.strftime('%Y%m%dT%H%M%S')}"  # fresh: a manifest there would resume
    source = (_MAPPED if design == "a" else _BATCH).format(
        dag_id=dag_id,
        n=n,
        poll=POLL_INTERVAL,
        destination=str(destination),
        batch_arguments="" if resume_margin is None else f"\n        resume_margin={resume_margin},",
    )
    what = DESIGNS[design] if resume_margin is None else f"{DESIGNS[design]}, resume_margin {resume_margin:g} s"
    airflow.add_dag(f"{dag_id}.py", source)
    airflow.wait_for_dag(dag_id, timeout=600)
    time.sleep(5)  # let parsing of the new file settle
    idle_start = sample(airflow)
    time.sleep(IDLE_SECONDS)
    idle = rates(idle_start, sample(airflow))
    client = airflow.standin.client
    stats_before = client.stats()
    load_before = os.getloadavg()[0]
    rss = _PeakRss()
    start = sample(airflow)
    run_id = airflow.trigger(dag_id, via="api")
    if design == "b":
        deadline = time.monotonic() + 120
        while rss.needle is None and time.monotonic() < deadline:
            rows = airflow.query(
                "SELECT id FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = 'speak'", (dag_id, run_id)
            )
            rss.needle = str(rows[0]["id"]) if rows else None
            time.sleep(0.5)
    state = airflow.wait_for_run(dag_id, run_id, timeout=4 * 3600)
    end = sample(airflow)
    peak_rss = rss.stop()
    stats_after = client.stats()
    wall = end["time"] - start["time"]
    states = airflow.task_states(dag_id, run_id)
    counts = task_log_counts(airflow, dag_id, run_id)
    api = {
        name: stats_after["endpoints"].get(name, 0) - stats_before["endpoints"].get(name, 0)
        for name in ("create", "status", "result", "bulk_result")
    }
    api_total = sum(api.values())
    refused = stats_after["rate_limited"] - stats_before["rate_limited"]
    failed_items = None
    if design == "b" and state == "success":
        result = airflow.xcom(dag_id, run_id, "speak")
        failed_items = result["failed"] + result["skipped"]
    return {
        **design_run(design, what, n, state, (start, end), idle, load_before, digits=4),
        "floor_s": rounded(floor_seconds(n), 1),
        "wall_vs_floor": rounded(wall / floor_seconds(n), 2),
        "task_instances": len(states),
        "worker_starts": counts["worker_runs"],
        "api_requests": api,
        "api_requests_per_voice": rounded(api_total / n, 2),
        "rate_limited": refused,
        "rate_limited_share": rounded(refused / api_total, 4) if api_total else None,
        "failed_tasks": sorted(key for key, value in states.items() if value != "success")[:20],
        "failed_task_count": sum(1 for value in states.values() if value != "success"),
        "failed_items": failed_items,
        "task_peak_rss_mb": rounded(peak_rss / 2**20, 1) if design == "b" else None,
    }


def report(runs: list[dict[str, Any]]) -> str:
    return markdown_table([_row(runs, run) for run in runs])


def _row(runs: list[dict[str, Any]], run: dict[str, Any]) -> dict[str, object]:
    """One run's line of ``report``, cell by column."""
    share = run["rate_limited_share"]
    return {
        "N": run["n"],
        "design": f"({run['design']}) {run['what']}",
        "wall s": run["wall_s"],
        "floor s": run["floor_s"],
        "CPU-s/voice (tree)": run["cpu_s_per_voice_tree"],
        "vs (a)": against_design_a(runs, run, digits=3) if run["design"] != "a" else "",
        "CPU-s/voice (machine)": run["cpu_s_per_voice_machine"],
        "task instances": run["task_instances"],
        "worker starts": run["worker_starts"],
        "API requests/voice": run["api_requests_per_voice"],
        "429 share": "" if share is None else f"{100 * share:.2f} %",
        "failed": run["failed_items"] if run["design"] == "b" else run["failed_task_count"],
        "peak RSS MB": run["task_peak_rss_mb"] or "",
        "load": f"{run['load_1min_before']} -> {run['load_1min_after']}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000], help="N for both designs")
    parser.add_argument("--designs", nargs="+", choices=sorted(DESIGNS), default=sorted(DESIGNS))
    parser.add_argument("--batch-only-sizes", type=int, nargs="*", default=[], help="more N for (b) alone")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--resume-margin", type=float, help="(b)'s resume_margin (default: the operator's, 30 s)")
    args = parser.parse_args(argv)

    from tests.deployment import AirflowDeployment

    runs: list[dict[str, Any]] = []
    environment = {
        # a loaded 2-core machine parses a DAG file slowly: Airflow's 30 s import timeout failed (a)'s tasks
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600",
        "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "600",
        "AIRFLOW__CORE__PARALLELISM": "32",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "1024",
        "AIRFLOW__CORE__MAX_MAP_LENGTH": "100000",
        "AIRFLOW__TRIGGERER__CAPACITY": "5000",
    }
    plan = [(n, design) for n in args.sizes for design in args.designs] + [(n, "b") for n in args.batch_only_sizes]
    with AirflowDeployment(
        pending_seconds=PENDING[0],
        standin_args=["--pending-seconds-max", str(PENDING[1])],
        env=environment,
        start_timeout=300,
    ) as airflow:
        airflow.standin.client.rate_limit(RATE_LIMIT)
        for n, design in plan:
            print(f"[{time.strftime('%H:%M:%S')}] design ({design}) N={n}", file=sys.stderr, flush=True)
            runs.append(run_design(airflow, design, n, args.resume_margin))
            print(report(runs[-1:]), file=sys.stderr, flush=True)
            args.out.mkdir(parents=True, exist_ok=True)
            write_json(
                args.out / "batch.json",
                {"machine": machine(), "pending_seconds": PENDING, "rate_limit": RATE_LIMIT, "runs": runs},
            )
            (args.out / "batch.md").write_text(report(runs))
    print(report(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
