"""The body of ``scripts/demo``: run the text-to-voice and design-keep-speak examples against the stand-in.

Starts the CAMB stand-in CLI on a free port, makes a temporary AIRFLOW_HOME (``airflow db migrate``),
copies the example DAGs into it, runs example_camb_text_to_voice with ``airflow dags test`` and the
previews going to ``--output``, lists each preview with its size and duration, then runs
example_camb_design_keep_speak (design, keep, speak) and prints where the speech landed, then speaks a
short audiobook chapter in one batch task (example_camb_batch_audiobook) and shows its manifest. The stand-in
and the temporary home go away on every exit (Ctrl-C and SIGTERM included); the home is kept when a
run fails, so its logs can be read.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
DAG_ID = "example_camb_text_to_voice"
DAG_FILE = REPO / "example_dags" / f"{DAG_ID}.py"
SPEAK_DAG_ID = "example_camb_design_keep_speak"
SPEAK_DAG_FILE = REPO / "example_dags" / f"{SPEAK_DAG_ID}.py"
BOOK_DAG_ID = "example_camb_batch_audiobook"
BOOK_DAG_FILE = REPO / "example_dags" / f"{BOOK_DAG_ID}.py"
TASK_ORDER = ["create_voice", "wait_for_voice", "download_previews"]
TRIGGER_DONE = re.compile(r"CAMB task \S+ ended with (\w+) after (\d+) polls? in ([\d.]+) s")


CHOOSING_BY_EAR = """
To choose the voice by ear (Airflow 3.1+), run {dag} in a deployment (airflow standalone, or
scheduler + triggerer + api-server) with the param choose="by ear" (its default). Then in the UI open
the run, task download_previews, tab "CAMB files" (or the task's "CAMB files" link): each preview plays
there. Answer on the Required Actions page of task choose_voice, or unattended through the REST API:
  curl -X PATCH "$AIRFLOW_URL/api/v2/dags/{dag}/dagRuns/$RUN_ID/taskInstances/choose_voice/-1/hitlDetails" \\
       -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \\
       -d '{{"chosen_options": ["Preview 2"], "params_input": {{}}}}'"""


class DemoFailed(Exception):
    """The demo could not finish; the message says why and where the logs are."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def start_standin(log_path: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """Start the stand-in CLI on a free port; return the process, its API URL and the connection JSON."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_camb.testing", "--port", "0", "--pending-seconds", "3"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        lines = log_path.read_text(errors="replace").splitlines()
        conn = [line.partition("=")[2] for line in lines if line.startswith("AIRFLOW_CONN_CAMB_DEFAULT=")]
        api = [line.split(":", 1)[1].strip() for line in lines if line.startswith("CAMB stand-in API:")]
        if conn and api:
            return process, api[0], shlex.split(conn[0])[0]
        time.sleep(0.1)
    stop(process)
    raise DemoFailed(f"The CAMB stand-in did not start:\n{log_path.read_text(errors='replace')}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers."""
    for signum, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(wait)


def airflow(args: list[str], env: dict[str, str], log_path: Path) -> int:
    """Run an ``airflow`` command with its output going to ``log_path``; return its exit code."""
    with log_path.open("ab") as log:
        log.write(f"\n$ airflow {shlex.join(args)}\n".encode())
        log.flush()
        return subprocess.call(  # noqa: S603 - our own interpreter running airflow
            [sys.executable, "-m", "airflow", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=env["AIRFLOW_HOME"],
        )


def run_outcome(
    db_path: Path, dag_id: str = DAG_ID, task_id: str = "download_previews"
) -> tuple[str, dict[str, str], list[dict[str, object]]]:
    """The last run's state, its task states, and ``task_id``'s return value as a list (read from the database)."""
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        row = db.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()
        if row is None:
            return "missing", {}, []
        run_id, state = row
        tasks = dict(
            db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
        )
        value = db.execute(
            "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = 'return_value'",
            (dag_id, run_id, task_id),
        ).fetchone()
    files: list[dict[str, object]] = []
    if value is not None:
        with contextlib.suppress(ValueError, TypeError):
            decoded = json.loads(value[0])
            files = decoded if isinstance(decoded, list) else [decoded] if isinstance(decoded, dict) else []
    return str(state), {k: str(v) for k, v in tasks.items()}, files


def describe(path: Path) -> str:
    """``1.00 s, 22050 Hz mono`` for a WAV file, else its type."""
    try:
        with wave.open(str(path), "rb") as audio:
            seconds = audio.getnframes() / audio.getframerate()
            channels = {1: "mono", 2: "stereo"}.get(audio.getnchannels(), f"{audio.getnchannels()} channels")
            return f"{seconds:5.2f} s  {audio.getframerate()} Hz {channels}"
    except (wave.Error, EOFError, OSError) as error:
        return f"not a readable WAV ({error})"


def wait_summary(log_path: Path) -> str:
    """How the sensor waited, from the run's log: deferred to the trigger, and what the trigger saw."""
    text = log_path.read_text(errors="replace")
    found = TRIGGER_DONE.search(text)
    if "DEFERRED" not in text or found is None:
        return ""
    status, polls, seconds = found.groups()
    return f" (deferred: the trigger saw {status} after {polls} poll{'s' * (polls != '1')}, {float(seconds):.0f} s)"


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="demo_output", help="where the previews go (default ./demo_output)")
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary AIRFLOW_HOME and its logs")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _on_signal)

    started = time.monotonic() - float(os.environ.get("CAMB_DEMO_SETUP_SECONDS", "0") or 0)
    output = Path(args.output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="camb-demo-"))
    log_path = home / "demo.log"
    standin: subprocess.Popen[bytes] | None = None
    failed = False

    version = importlib.metadata.version("apache-airflow")  # not `import airflow`: it would read ~/airflow
    print(f"CAMB.AI provider demo: {DAG_ID} on Airflow {version}, against a local CAMB stand-in")
    try:
        standin, api_url, connection = start_standin(home / "standin.log")
        print(f"  1. CAMB stand-in listening at {api_url} (no account, no network)")

        env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
        env.update(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
            AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP=r"(airflow|airflow_provider_camb)\..*",
            AIRFLOW_CONN_CAMB_DEFAULT=connection,
        )
        (home / "dags").mkdir()
        shutil.copyfile(DAG_FILE, home / "dags" / DAG_FILE.name)
        shutil.copyfile(SPEAK_DAG_FILE, home / "dags" / SPEAK_DAG_FILE.name)
        shutil.copyfile(BOOK_DAG_FILE, home / "dags" / BOOK_DAG_FILE.name)
        step = time.monotonic()
        if airflow(["db", "migrate"], env, log_path) != 0:
            raise DemoFailed("`airflow db migrate` failed")
        print(f"  2. Airflow home ready in {time.monotonic() - step:.0f} s (temporary: {home})")

        print(f"  3. airflow dags test {DAG_ID} (previews to {_shown(output)}) ...", flush=True)
        step = time.monotonic()
        code = airflow(["dags", "test", DAG_ID, "--conf", json.dumps({"destination": str(output)})], env, log_path)
        state, tasks, files = run_outcome(home / "airflow.db")
        for task in sorted(tasks, key=lambda t: TASK_ORDER.index(t) if t in TASK_ORDER else len(TASK_ORDER)):
            note = wait_summary(log_path) if task == "wait_for_voice" and tasks[task] == "success" else ""
            print(f"     {task:<21} {tasks[task]}{note}")
        print(f"     run {state} in {time.monotonic() - step:.0f} s")
        if code != 0 or state != "success":
            raise DemoFailed(f"the DAG run ended {state} (exit code {code})")
        paths = [
            Path(str(file["path"]).removeprefix("file://"))
            for file in files
            if isinstance(file, dict) and "path" in file
        ]
        paths = [path for path in paths if path.is_file()]
        if not paths:
            raise DemoFailed("the run succeeded but wrote no preview file")

        print(f"     {len(paths)} voice previews in {_shown(output)}/:")
        for path in paths:
            print(f"       {_shown(path)}  {path.stat().st_size / 1024:6.1f} KiB  {describe(path)}")

        print(f"  4. airflow dags test {SPEAK_DAG_ID} (design, keep, speak; choose='first') ...", flush=True)
        step = time.monotonic()
        conf = json.dumps({"destination": str(output), "choose": "first"})  # unattended: nobody is asked
        code = airflow(["dags", "test", SPEAK_DAG_ID, "--conf", conf], env, log_path)
        state, tasks, speech = run_outcome(home / "airflow.db", SPEAK_DAG_ID, "save_speech")
        order = ["design_voice", "download_previews", "choose_voice", "keep_voice", "speak", "save_speech"]
        for task in sorted(tasks, key=lambda t: order.index(t) if t in order else len(order)):
            print(f"     {task:<21} {tasks[task]}")
        print(f"     run {state} in {time.monotonic() - step:.0f} s")
        if code != 0 or state != "success" or not speech:
            raise DemoFailed(f"the design-keep-speak run ended {state} (exit code {code})")
        spoken = Path(str(speech[0]["path"]).removeprefix("file://"))

        print(f"  5. airflow dags test {BOOK_DAG_ID} (a chapter, one batch task) ...", flush=True)
        step = time.monotonic()
        code = airflow(["dags", "test", BOOK_DAG_ID, "--conf", json.dumps({"destination": str(output)})], env, log_path)
        state, tasks, report = run_outcome(home / "airflow.db", BOOK_DAG_ID, "speak_chapter")
        print(f"     run {state} in {time.monotonic() - step:.0f} s")
        if code != 0 or state != "success" or not report:
            raise DemoFailed(f"the audiobook batch ended {state} (exit code {code})")
        manifest = Path(str(report[0]["manifest"]))
        entries = [json.loads(line) for line in manifest.read_text().splitlines()]
        print(f"     {report[0]['succeeded']} lines spoken, {report[0]['failed']} failed; manifest {_shown(manifest)}:")
        for entry in entries:
            (file,) = entry["files"]
            task, where = f"CAMB task {entry['camb_task_id'][:8]}...", _shown(Path(file["path"]))
            print(f"       {entry['key']}  {entry['status']:<9}  {task}  {file['bytes']} bytes  {where}")

        print(f"\nDone in {time.monotonic() - started:.0f} s. The kept voice's speech landed in:")
        print(f"  {_shown(spoken)}  {spoken.stat().st_size / 1024:6.1f} KiB  {describe(spoken)}")
        print(CHOOSING_BY_EAR.format(dag=SPEAK_DAG_ID))
        return 0
    except DemoFailed as error:
        failed = True
        print(f"\nDemo failed: {error}.", file=sys.stderr)
        _show_tail(log_path)
        return 1
    except KeyboardInterrupt:
        print("\nDemo interrupted.", file=sys.stderr)
        return 130
    finally:
        if standin is not None:
            stop(standin)
        if failed or args.keep_home:
            print(f"Airflow home and logs kept in {home}", file=sys.stderr if failed else sys.stdout)
        else:
            shutil.rmtree(home, ignore_errors=True)


def _shown(path: Path) -> str:
    """A path relative to the current folder when it is inside it."""
    with contextlib.suppress(ValueError):
        return "./" + str(path.relative_to(Path.cwd()))
    return str(path)


def _show_tail(log_path: Path, lines: int = 15) -> None:
    """The error that ended the run (the last exception line of the log), else the log's last lines."""
    if not log_path.exists():
        return
    text = log_path.read_text(errors="replace").splitlines()
    causes = [line.strip() for line in text if re.match(r"\s*[\w.]+(Error|Exception|Timeout)\b.*: ", line)]
    if causes:
        print(f"Cause: {causes[-1]}", file=sys.stderr)
    else:
        print("Last lines of the log:\n  " + "\n  ".join(text[-lines:]), file=sys.stderr)
    print(f"Whole log: {log_path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
