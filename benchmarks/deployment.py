"""What a voice costs a real deployment, in three designs of the wait (issue: waits end in the triggerer).

A real Airflow 3 deployment (``tests/deployment.py``: scheduler with LocalExecutor, triggerer,
dag-processor, API server; the CAMB stand-in as CAMB) runs one DAG run of N voices, create -> wait ->
download, for each design:

- ``a``: resume on the worker, as 0.1.0 did (``end_from_trigger=False, resume_margin=0``): mapped create,
  wait, download;
- ``b``: end in the triggerer, the default: the same mapped DAG;
- ``d``: resume on the worker with the mitigation (``end_from_trigger=False``, the default ``resume_margin``),
  as waits do where Airflow has listeners: the same mapped DAG;
- ``c``: start and end in the triggerer (``start_from_trigger=True``). Airflow 3.3.2 cannot start a *mapped*
  task in the triggerer, so the N waits are N unmapped sensors, each pulling its create's XCom for one
  map index; creates and downloads stay mapped, and one small task gathers the run ids.

Figures per (design, N): wall time from trigger to the run's end; CPU-seconds per voice above the
deployment's idle rate, machine-wide (``/proc/stat``) and of the deployment's own process tree (robust
when other work shares the machine); worker runs of task code per voice (counted in the task logs; a
start Airflow reschedules because the worker found no DAG yet runs no code and is not counted); how many
waits ran in the triggerer; failed tasks; for the designs that resume on a worker, how long after each
deferral the scheduler read the deferring worker's report and the trigger fired (apache/airflow#72716 loses
the wait when the trigger fires first). Each CAMB task ends ``PENDING_SECONDS`` after its first status
read, so every wait really waits: a quick task, as in the lost-task case of apache/airflow#72716.

    .venv/bin/python -m benchmarks.deployment [--sizes 50 200] [--designs a b c d] [--name deployment]

Writes ``results/<name>.json``, ``results/<name>.md`` and ``results/<name>.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (
    RESULTS,
    TMP,
    against_design_a,
    design_run,
    machine,
    markdown_table,
    percentile,
    rounded,
    write_json,
)

#: Each CAMB task ends this long after its first status read (the stand-in's --pending-from-first-status):
#: every wait really waits, in every design, however late a busy machine starts its sensor.
PENDING_SECONDS = 3.0
POLL_INTERVAL = 2
IDLE_SECONDS = 20.0
DESIGNS = {
    "a": "resume on the worker, no margin (end_from_trigger=False, resume_margin=0)",
    "b": "end in the triggerer (default)",
    "c": "start and end in the triggerer (start_from_trigger=True)",
    "d": "resume on the worker with resume_margin (end_from_trigger=False)",
}
#: The designs as the plot's title names them.
DESCRIBED = {"a": "resume on worker", "b": "end in triggerer", "c": "start+end in triggerer", "d": "resume + margin"}
#: What the sensor is given beyond the DAG's common arguments, by design.
_WAIT_ARGUMENTS = {
    "a": ", end_from_trigger=False, resume_margin=0",
    "b": ", end_from_trigger=True",
    "d": ", end_from_trigger=False",
}
_STARTED_IN_TRIGGERER = """
import pendulum
from airflow.sdk import DAG, task
from airflow_provider_camb.operators.text_to_voice import TextToVoiceOperator, TextToVoiceResultOperator
from airflow_provider_camb.sensors.text_to_voice import TextToVoiceStatusSensor

with DAG("{dag_id}", start_date=pendulum.datetime(2024, 1, 1), schedule=None, max_active_tasks=1024) as dag:

    @task
    def texts() -> list:
        return [f"Voice number {{i}} says hello." for i in range({n})]

    @task
    def run_ids(ids: list) -> list:
        return list(ids)

    create = TextToVoiceOperator.partial(task_id="create", voice_description={description!r}).expand(text=texts())
    waits = []
    for i in range({n}):
        wait = TextToVoiceStatusSensor(
            task_id=f"wait_{{i}}",
            camb_task_id="{{{{ ti.xcom_pull(task_ids='create', map_indexes=" + str(i) + ") }}}}",
            poll_interval={poll},
            start_from_trigger=True,
            timeout=1800,
        )
        create >> wait
        waits.append(wait.output)
    TextToVoiceResultOperator.partial(task_id="download", destination={destination!r}).expand(
        run_id=run_ids(waits)
    )
"""


def dag_source(design: str, n: int, dag_id: str, destination: Path) -> str:
    """The DAG of ``design`` for ``n`` voices, saving into ``destination``."""
    from tests.deployment_dags import mapped_create_wait_download
    from tests.shared import DESCRIPTION

    if design != "c":
        return mapped_create_wait_download(
            dag_id,
            voices=n,
            poll_interval=POLL_INTERVAL,
            timeout=1800,
            destination=str(destination),
            wait_arguments=_WAIT_ARGUMENTS.get(design, ""),
        )
    fields = {
        "dag_id": dag_id,
        "n": n,
        "poll": POLL_INTERVAL,
        "description": DESCRIPTION,
        "destination": str(destination),
    }
    return _STARTED_IN_TRIGGERER.format(**fields)


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def tree_cpu(airflow: Any) -> float:
    """CPU seconds used by the deployment's processes and every descendant they have reaped."""
    import psutil

    total = 0.0
    seen: set[int] = set()
    for process in airflow._processes.values():
        if process.pid is None:
            continue
        try:
            leader = psutil.Process(process.pid)
            members = [leader, *leader.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for member in members:
            if member.pid in seen:
                continue
            seen.add(member.pid)
            try:
                times = member.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system + times.children_user + times.children_system
    return total


def sample(airflow: Any) -> dict[str, float]:
    busy, total = machine_busy()
    return {"time": time.monotonic(), "machine": busy, "tree": tree_cpu(airflow), "machine_total": total}


def rates(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    seconds = after["time"] - before["time"]
    return {key: (after[key] - before[key]) / seconds for key in ("machine", "tree")}


def task_log_counts(airflow: Any, dag_id: str, run_id: str) -> dict[str, int]:
    """Counted over every task log of the run: worker runs of task code, and waits that deferred.

    A worker that finds no DAG at start-up has Airflow reschedule the task without running it; that
    start runs none of the task's code and is not counted as a worker run.
    """
    folder = airflow.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
    counts = {"worker_runs": 0, "deferred": 0}
    for path in folder.rglob("attempt=*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            counts["worker_runs"] += text.count("Worker startup parse complete")
            counts["deferred"] += text.count(f"trigger {dag_id}/")  # the triggerer logs "trigger <ti> starting"
    return counts


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _resume_lags(airflow: Any, dag_id: str, run_id: str) -> dict[str, list[float]]:
    """Seconds from each mapped wait's deferral to the scheduler reading the deferring worker's report,
    and to its trigger firing (read from the task logs and the scheduler's log)."""
    read: dict[int, list[float]] = {}
    report = re.compile(
        rf"^(\S+) .*Received executor event with state success for task instance TaskInstanceKey\("
        rf"dag_id='{dag_id}', task_id='wait', run_id='{run_id}', try_number=\d+, map_index=(\d+)\)"
    )
    for line in airflow.component_log("scheduler").splitlines():
        match = report.match(line)
        if match:
            read.setdefault(int(match.group(2)), []).append(_epoch(match.group(1)))
    lags: dict[str, list[float]] = {"report_read": [], "trigger_fired": []}
    folder = airflow.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / "task_id=wait"
    for index, deferred, fired in _deferrals(folder):
        after = [when for when in read.get(index, []) if when >= deferred]  # a start rescheduled before is earlier
        if after:
            lags["report_read"].append(after[0] - deferred)
        if fired is not None:
            lags["trigger_fired"].append(fired - deferred)
    return lags


def _deferrals(folder: Path) -> list[tuple[int, float, float | None]]:
    """(map index, deferred at, trigger fired at) of each wait's first try, from its JSON-lines logs."""
    found = []
    for mapped in folder.glob("map_index=*"):
        deferred = fired = None
        for path in mapped.glob("attempt=1.log*"):
            for line in path.read_text(errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if "Pausing task as DEFERRED" in str(entry.get("event")):
                    deferred = _epoch(entry["timestamp"])
                elif entry.get("event") == "Trigger fired event":
                    fired = _epoch(entry["timestamp"])
        if deferred is not None:
            found.append((int(mapped.name.removeprefix("map_index=")), deferred, fired))
    return found


def run_design(airflow: Any, design: str, n: int) -> dict[str, Any]:
    dag_id = f"bench_{design}_{n}"
    destination = TMP / "deployment" / dag_id
    airflow.add_dag(f"{dag_id}.py", dag_source(design, n, dag_id, destination))
    airflow.wait_for_dag(dag_id, timeout=300)
    time.sleep(5)  # let parsing of the new file settle
    idle_start = sample(airflow)
    time.sleep(IDLE_SECONDS)
    idle = rates(idle_start, sample(airflow))
    load_before = os.getloadavg()[0]
    start = sample(airflow)
    run_id = airflow.trigger(dag_id, via="api")
    state = airflow.wait_for_run(dag_id, run_id, timeout=3600)
    end = sample(airflow)
    states = airflow.task_states(dag_id, run_id)
    failed = sorted(key for key, value in states.items() if value != "success")
    counts = task_log_counts(airflow, dag_id, run_id)
    lags = _resume_lags(airflow, dag_id, run_id) if design in ("a", "d") else {}
    return {
        **design_run(design, DESIGNS[design], n, state, (start, end), idle, load_before),
        "worker_starts_per_voice": rounded(counts["worker_runs"] / n, 3),
        "waits_in_triggerer": counts["deferred"],
        "tasks": len(states),
        "failed_tasks": len(failed),
        "lost_waits": len([key for key in failed if key.startswith("wait[")]),
        "failed": failed[:20],
        "report_read_after_deferral_s": {
            q: rounded(percentile(lags.get("report_read", []), value), 3) for q, value in (("p50", 50), ("max", 100))
        },
        "trigger_fired_after_deferral_s": {
            q: rounded(percentile(lags.get("trigger_fired", []), value), 3) for q, value in (("p50", 50), ("max", 100))
        },
    }


def report(runs: list[dict[str, Any]]) -> str:
    return markdown_table([_row(runs, run) for run in runs])


def _row(runs: list[dict[str, Any]], run: dict[str, Any]) -> dict[str, object]:
    """One run's line of ``report``, cell by column."""
    return {
        "N": run["n"],
        "design": f"({run['design']}) {run['what']}",
        "wall s": run["wall_s"],
        "CPU-s/voice (machine)": run["cpu_s_per_voice_machine"],
        "CPU-s/voice (tree)": run["cpu_s_per_voice_tree"],
        "vs (a)": against_design_a(runs, run),
        "worker starts/voice": run["worker_starts_per_voice"],
        "waits in triggerer": f"{run['waits_in_triggerer']}/{run['n']}",
        "failed (waits lost)": f"{run['failed_tasks']} ({run.get('lost_waits', '?')})",
        "after deferral: report read, trigger fired (p50/max s)": _lags(run),
        "load": f"{run['load_1min_before']} -> {run['load_1min_after']}",
    }


def _lags(run: dict[str, Any]) -> str:
    read, fired = run.get("report_read_after_deferral_s") or {}, run.get("trigger_fired_after_deferral_s") or {}
    if read.get("max") is None:
        return ""
    return f"{read['p50']}/{read['max']}, {fired.get('p50')}/{fired.get('max')}"


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r["n"] for r in runs})
    designs = sorted({r["design"] for r in runs})
    figure, axes = plt.subplots(1, 3, figsize=(13, 4))
    for axis, key, title in zip(
        axes,
        ("cpu_s_per_voice_tree", "wall_s", "worker_starts_per_voice"),
        ("CPU-s per voice (deployment, above idle)", "wall time, s", "worker starts per voice"),
        strict=True,
    ):
        width = 0.8 / len(designs)
        for index, design in enumerate(designs):
            values = [next((r[key] for r in runs if r["n"] == n and r["design"] == design), 0) for n in sizes]
            axis.bar([i + index * width for i in range(len(sizes))], values, width, label=f"({design})")
        axis.set_xticks([i + width * (len(designs) - 1) / 2 for i in range(len(sizes))], [f"N={n}" for n in sizes])
        axis.set_title(title, fontsize=10)
    axes[0].legend(fontsize=8)
    figure.suptitle(
        "create -> wait -> download in a real deployment: " + ", ".join(f"({d}) {DESCRIBED[d]}" for d in designs),
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--designs", nargs="+", choices=sorted(DESIGNS), default=sorted(DESIGNS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="deployment", help="the results' file name, without its suffix")
    args = parser.parse_args(argv)

    from tests.deployment import AirflowDeployment

    runs: list[dict[str, Any]] = []
    environment = {"AIRFLOW__CORE__PARALLELISM": "64", "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "1024"}
    with AirflowDeployment(
        pending_seconds=PENDING_SECONDS,
        standin_args=["--pending-from-first-status"],
        env=environment,
        start_timeout=300,
    ) as airflow:
        for n in args.sizes:
            for design in args.designs:
                print(f"[{time.strftime('%H:%M:%S')}] design ({design}) N={n}", file=sys.stderr, flush=True)
                runs.append(run_design(airflow, design, n))
                print(report(runs[-1:]), file=sys.stderr, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{args.name}.json", {"machine": machine(), "pending_seconds": PENDING_SECONDS, "runs": runs})
    (args.out / f"{args.name}.md").write_text(report(runs))
    plot(runs, args.out / f"{args.name}.png")
    print(report(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
