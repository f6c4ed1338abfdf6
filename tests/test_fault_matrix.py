"""The fault matrix of issue 5, at workflow level: create -> deferrable sensor -> download, run with
``dag.test()`` (Airflow 3.3 runs the trigger inline) against the stand-in's fault switches.

Every case is one row of ``CASES``: what goes wrong while the sensor waits, how the run must end, the
text the logs must show, and the destination folder afterwards (only the final files on success, nothing
at all on failure). ``docs/faults.md`` is the same table in words; a test keeps the two in step.

The stand-in keeps created tasks PENDING; a helper thread waits until the sensor's own check (before it
defers) has been answered, then injects the row's fault and lets the task end. So every fault lands in
the triggerer's wait, whatever the machine's speed.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_camb.testing import CambStandIn
from tests.shared import DESCRIPTION, TEXT, connect, ids

RETRIES = 3
RETRY_SETTINGS: dict[str, float] = {"retries": RETRIES, "backoff": 0.05, "backoff_max": 0.5}
POLL_INTERVAL = 0.5
RATE_LIMIT_SECONDS = 2
OUTAGE_SECONDS = 3.0
#: Longer than the whole run may take: a reply this slow must be abandoned, never waited for.
SLOW_REPLY_SECONDS = 600

WORKFLOW = """
import pendulum
from datetime import timedelta
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_camb.operators.text_to_voice import TextToVoiceOperator, TextToVoiceResultOperator
from airflow_provider_camb.sensors.camb_task import CambTaskSensor

with DAG("{dag_id}", start_date=pendulum.datetime(2024, 1, 1), schedule=None) as dag:
    create = TextToVoiceOperator(task_id="create", text={text!r}, voice_description={description!r})
    wait = CambTaskSensor(
        task_id="wait",
        kind="text-to-voice",
        camb_task_id=create.output,
        poll_interval={poll_interval},
        deferrable=True,
        timeout={sensor_timeout},
        soft_fail={soft_fail},
        retries={sensor_retries},
        retry_delay=timedelta(seconds=0),
    )
    TextToVoiceResultOperator(
        task_id="download",
        run_id=wait.output,
        destination={destination!r},
        retries={download_retries},
        retry_delay=timedelta(seconds=0),
    )
"""


# --- the matrix ------------------------------------------------------------------------------------


SUCCESS = {"create": "success", "wait": "success", "download": "success"}
WAIT_FAILED = {"create": "success", "wait": "failed", "download": "upstream_failed"}
DOWNLOAD_FAILED = {"create": "success", "wait": "success", "download": "failed"}


@dataclass(frozen=True)
class Case:
    """One row of the fault matrix."""

    #: The row of docs/faults.md this case pins, word for word: "| fault | what the provider does |".
    doc: str
    #: Runs in a helper thread once the sensor's first check was answered (the sensor is deferring).
    during_wait: Callable[[CambStandIn], None] = lambda standin: None
    #: The status the CAMB task reports once the fault is in place; None: it stays PENDING.
    finish: str | None = "SUCCESS"
    states: dict[str, str] = field(default_factory=lambda: dict(SUCCESS))
    #: Text the captured output must contain; each entry must appear at least once.
    logged: tuple[str, ...] = ()
    tries: dict[str, int] = field(default_factory=dict)
    connection_extra: dict[str, Any] = field(default_factory=dict)
    sensor: dict[str, Any] = field(default_factory=dict)
    download_retries: int = 0


def inject(fault: str, times: int = 1, endpoint: str = "status", **params: Any) -> Callable[[CambStandIn], None]:
    return lambda standin: standin.inject(fault, endpoint=endpoint, times=times, **params)


def inject_all(*steps: Callable[[CambStandIn], None]) -> Callable[[CambStandIn], None]:
    def run(standin: CambStandIn) -> None:
        for step in steps:
            step(standin)

    return run


def recovers(doc: str, during_wait: Callable[[CambStandIn], None], logged: tuple[str, ...], **extra: Any) -> Case:
    """A passing fault while the sensor waits: retried, and the run succeeds (``extra``: the connection's)."""
    return Case(doc, during_wait, logged=logged, connection_extra=extra)


def refused(doc: str, fault: str, logged: tuple[str, ...]) -> Case:
    """CAMB refuses a status read for good (``fault``, once): the sensor fails at once; no download."""
    return Case(doc, inject(fault), finish=None, states=WAIT_FAILED, logged=logged)


def task_ends(doc: str, status: str, logged: tuple[str, ...], retries: int, tries: int) -> Case:
    """The CAMB task ends with ``status``: the sensor fails, ``tries`` times with ``retries`` allowed; no download."""
    return Case(
        doc, finish=status, states=WAIT_FAILED, sensor={"retries": retries}, tries={"wait": tries}, logged=logged
    )


CASES: dict[str, Case] = {
    # Passing faults while the sensor waits: retried, and the run succeeds.
    "server_errors": recovers(
        "| a burst of HTTP 500, 502 and 503 while waiting | retried with backoff, each retry logged with its "
        "cause; the run succeeds |",
        inject_all(inject("http_500", 2), inject("http_502", 2), inject("http_503", 2)),
        ("failed: CAMB had a server error", "HTTP 500", "HTTP 502", "HTTP 503", "Retrying in"),
    ),
    "rate_limit_seconds": recovers(
        "| HTTP 429 with `Retry-After: <seconds>` | waits that many seconds before the next request; "
        "the run succeeds |",
        inject("rate_limit", retry_after=RATE_LIMIT_SECONDS),
        ("HTTP 429, retry after 2 s", "Retrying in 2.0 s"),
    ),
    "rate_limit_http_date": recovers(
        "| HTTP 429 with `Retry-After: <HTTP date>` | waits until that time before the next request; the run "
        "succeeds |",
        inject("rate_limit", retry_after=RATE_LIMIT_SECONDS, date_form=True),
        ("HTTP 429, retry after",),
    ),
    "connection_refused": recovers(
        "| the API refuses connections for a while (an outage shorter than the sensor's timeout) | "
        "retried until it answers again; the run succeeds |",
        lambda standin: standin.outage(OUTAGE_SECONDS),
        ("Could not reach CAMB", "ClientConnectorError"),
        backoff_max=0.1,  # many tries during the outage: more than `retries` allows
    ),
    "connection_reset": recovers(
        "| the connection is reset before a reply | retried; the run succeeds |",
        inject("drop", 3),
        ("Could not reach CAMB", "ServerDisconnectedError"),
    ),
    "slow_reply": recovers(
        "| a reply slower than the connection's `timeout` | the request is abandoned at the timeout and "
        "retried; the run succeeds |",
        inject("slow", delay=SLOW_REPLY_SECONDS),
        ("Could not reach CAMB", "TimeoutError"),
        timeout=1,
    ),
    "malformed_json": recovers(
        "| a cut-off (malformed) JSON body | retried as transient; the run succeeds |",
        inject("malformed_json", 2),
        ("a body that is not JSON", "Retrying in"),
    ),
    "html_error_page": recovers(
        "| an HTML error page (e.g. a proxy's 502) | retried as transient, the log quotes the start of the page; "
        "the run succeeds |",
        inject("html_error", 2),
        ("HTTP 502: <html><head><title>502 Bad Gateway", "Retrying in"),
    ),
    "empty_body": recovers(
        "| an empty body | retried as transient; the run succeeds |",
        inject("empty_body", 2),
        ("a body that is not JSON: (empty body)", "Retrying in"),
    ),
    "unknown_status": recovers(
        "| an unknown status string for a while, then SUCCESS | treated as not finished, one warning per "
        "unknown string; the run succeeds |",
        inject("unknown_status", 3, status="QUEUED_FOR_GPU"),
        ("reports an unknown status 'QUEUED_FOR_GPU'; treating it as not finished yet",),
    ),
    # Permanent faults while the sensor waits, and tasks that end badly: the sensor fails, nothing is downloaded.
    "unauthorized": refused(
        "| HTTP 401 while waiting (the key was revoked) | the sensor fails at once, naming the API key of "
        "the connection; no retried request, no download |",
        "unauthorized",
        ("CAMB refused the API key", "Check the API key (Password field) of Airflow connection 'camb_default'"),
    ),
    "not_found": refused(
        "| HTTP 404 for the task id | the sensor fails, naming the CAMB task id; no download |",
        "not_found",
        ("CAMB found nothing while reading the status of CAMB text-to-voice task",),
    ),
    "task_error": task_ends(
        "| the task ends with ERROR | the sensor fails naming the task, its `exception_reason` and advice "
        "(review the inputs); Airflow retries apply; no download |",
        "ERROR",
        ("ended with status ERROR", "PROCESSING_ERROR", "Review the inputs"),
        retries=1,
        tries=2,
    ),
    "task_timeout": task_ends(
        "| the task ends with TIMEOUT | the sensor fails naming the task and advising a retry or CAMB "
        "support; Airflow retries apply; no download |",
        "TIMEOUT",
        ("ended with status TIMEOUT", "contact CAMB.AI support"),
        retries=1,
        tries=2,
    ),
    "payment_required": task_ends(
        "| the task ends with PAYMENT_REQUIRED | the sensor fails without retries (add credits); no download |",
        "PAYMENT_REQUIRED",
        ("ended with PAYMENT_REQUIRED", "Add credits"),
        retries=2,
        tries=1,
    ),
    # Downloads cut off, and deadlines.
    "download_cut_off": Case(
        doc="| every download of a preview is cut off mid-stream | the download task fails; nothing under the "
        "final name, no temporary file left |",
        during_wait=inject("truncate", 100, endpoint="preview"),
        states=DOWNLOAD_FAILED,
        logged=("Downloading a preview from localhost failed after", "the stream was cut off"),
    ),
    "download_cut_off_then_rerun": Case(
        doc="| a preview download is cut off until the download task's first try gives up | the next try "
        "downloads every preview whole; only the final files remain |",
        during_wait=inject("truncate", 1 + RETRIES, endpoint="preview"),
        download_retries=1,
        tries={"download": 2},
        logged=("the stream was cut off",),
    ),
    "deadline": Case(
        doc="| the sensor's `timeout` passes while the task is still PENDING | `CambWaitTimeoutError` (Airflow's "
        "sensor timeout) fails the sensor without retries; no download |",
        finish=None,
        states=WAIT_FAILED,
        sensor={"timeout": 3, "retries": 2},
        tries={"wait": 1},  # no retry although two were allowed
        logged=("CambWaitTimeoutError", "did not finish before the deadline (last status PENDING)"),
    ),
    "deadline_soft_fail": Case(
        doc="| the same with `soft_fail=True` | the sensor and the download are skipped |",
        finish=None,
        states={"create": "success", "wait": "skipped", "download": "skipped"},
        sensor={"timeout": 3, "soft_fail": True},
    ),
}


# --- running one row ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one run of the workflow under one row's fault left behind."""

    case: Case
    result: Any
    output: str
    standin: CambStandIn
    camb_task_id: str
    destination: Path
    #: How many status requests had arrived, and the statuses answered, when the run had ended.
    status_requests_at_end: int = 0
    status_replies_at_end: tuple[int, ...] = ()


def _drive(standin: CambStandIn, case: Case) -> Future[str]:
    """In a helper thread: after the sensor's first check was answered, apply the fault and end the task."""

    def drive() -> str:
        deadline = time.monotonic() + 60
        while not (answered := standin.requests("status")):
            if time.monotonic() > deadline:
                raise TimeoutError("the sensor never checked the CAMB task")
            time.sleep(0.01)
        camb_task_id = answered[0].path_id
        assert camb_task_id is not None and answered[0].status == 200
        case.during_wait(standin)
        if case.finish is not None:
            standin.add_task(task_id=camb_task_id, status=case.finish)
        return camb_task_id

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fault-driver")
    future = executor.submit(drive)
    executor.shutdown(wait=False)
    return future


#: Each row runs once per session; the tests below read the same run (the stand-in's record outlives it).
_RUNS: dict[str, Outcome] = {}


@pytest.fixture(params=list(CASES))
def outcome(
    request: pytest.FixtureRequest,
    run_dag: Any,
    camb_standin_factory: Callable[..., CambStandIn],
    capfd: pytest.CaptureFixture[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Outcome:
    """The workflow run through one row of the matrix (run on first use)."""
    name: str = request.param
    if name not in _RUNS:
        _RUNS[name] = _run_case(name, run_dag, camb_standin_factory, capfd, tmp_path_factory)
    return _RUNS[name]


def _run_case(
    name: str,
    run_dag: Any,
    camb_standin_factory: Callable[..., CambStandIn],
    capfd: pytest.CaptureFixture[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Outcome:
    case = CASES[name]
    standin = camb_standin_factory(pending_seconds=3600)  # created tasks wait for the driver
    destination = tmp_path_factory.mktemp(f"fault-{name}") / "voices"
    sensor = {"timeout": 60, "soft_fail": False, "retries": 0, **case.sensor}
    source = WORKFLOW.format(
        dag_id=f"fault_{name}_{next(ids)}",
        text=TEXT,
        description=DESCRIPTION,
        poll_interval=POLL_INTERVAL,
        sensor_timeout=sensor["timeout"],
        soft_fail=sensor["soft_fail"],
        sensor_retries=sensor["retries"],
        destination=str(destination),
        download_retries=case.download_retries,
    )
    capfd.readouterr()
    with pytest.MonkeyPatch.context() as env:
        connect(env, standin, **{**RETRY_SETTINGS, **case.connection_extra})
        driver = _drive(standin, case)
        result = run_dag.run(source)
    camb_task_id = driver.result(timeout=5)
    captured = capfd.readouterr()
    arrived, answered = standin.request_count("status"), tuple(r.status for r in standin.requests("status"))
    return Outcome(case, result, captured.out + captured.err, standin, camb_task_id, destination, arrived, answered)


def _files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def _local(path: str) -> Path:
    return Path(path.removeprefix("file://"))


# --- what every row must hold ------------------------------------------------------------------------


def test_the_run_ends_as_the_matrix_states(outcome: Outcome) -> None:
    assert outcome.result.task_states == outcome.case.states
    for task, tries in outcome.case.tries.items():
        assert outcome.result.tries[task] == tries, task


def test_the_logs_name_the_fault(outcome: Outcome) -> None:
    missing = [text for text in outcome.case.logged if text not in outcome.output]
    assert not missing, f"not in the output: {missing}"


def test_the_destination_holds_only_whole_final_files_or_nothing(outcome: Outcome) -> None:
    files = _files(outcome.destination)
    if outcome.result.task_states["download"] != "success":
        assert files == [], "a failed or skipped download must leave no file at all"
        return
    listed = outcome.result.xcom("download")
    assert sorted(_local(item["path"]) for item in listed) == files  # no temporary or stray file
    for item in listed:
        data = _local(item["path"]).read_bytes()
        assert len(data) == item["bytes"]
        assert hashlib.sha256(data).hexdigest() == item["sha256"]
        assert data[:4] == b"RIFF"  # a whole WAV from the stand-in


def test_the_api_key_never_appears_in_the_output(outcome: Outcome) -> None:
    assert outcome.standin.api_key not in outcome.output


# --- what single rows pin beyond that -------------------------------------------------------------


def _status_requests_after_the_first_check(outcome: Outcome) -> list[Any]:
    return outcome.standin.requests("status")[1:]


@pytest.mark.parametrize("outcome", ["rate_limit_seconds", "rate_limit_http_date"], indirect=True)
def test_a_rate_limited_wait_honours_retry_after(outcome: Outcome) -> None:
    polls = _status_requests_after_the_first_check(outcome)
    limited = [i for i, r in enumerate(polls) if r.status == 429]
    assert len(limited) == 1 and limited[0] + 1 < len(polls)
    # The stand-in's own clock: the next request came no sooner than the Retry-After it sent (2 s, or a
    # date at least 2 s ahead), give or take a generous quarter.
    gap = polls[limited[0] + 1].time - polls[limited[0]].time
    assert gap >= 0.75 * RATE_LIMIT_SECONDS, f"the next request came {gap:.2f} s after the 429"


@pytest.mark.parametrize("outcome", ["connection_refused"], indirect=True)
def test_polls_resume_after_an_outage(outcome: Outcome) -> None:
    # What the provider did: it went on trying while refused, past the connection's retry count (the wait
    # retries until its deadline), and its next request reached the API and was answered.
    tries = [int(n) for n in re.findall(r"Attempt (\d+) failed: Could not reach CAMB", outcome.output)]
    assert tries and max(tries) > 1 + RETRIES, tries
    polls = _status_requests_after_the_first_check(outcome)
    assert polls and polls[0].status == 200, "the trigger never reached the API again"


@pytest.mark.parametrize("outcome", ["unknown_status"], indirect=True)
def test_an_unknown_status_is_warned_about_once(outcome: Outcome) -> None:
    assert outcome.output.count("reports an unknown status 'QUEUED_FOR_GPU'") == 1
    assert sum(r.status == 200 for r in _status_requests_after_the_first_check(outcome)) >= 4  # 3 unknown + SUCCESS


@pytest.mark.parametrize("outcome", ["unauthorized"], indirect=True)
def test_a_revoked_key_burns_no_retries(outcome: Outcome) -> None:
    assert [r.status for r in _status_requests_after_the_first_check(outcome)] == [401]
    assert "Retrying" not in outcome.output
    assert outcome.standin.request_count("result") == 0


@pytest.mark.parametrize("outcome", ["not_found"], indirect=True)
def test_a_missing_task_is_named_in_the_failure(outcome: Outcome) -> None:
    assert (
        f"CAMB found nothing while reading the status of CAMB text-to-voice task '{outcome.camb_task_id}'"
        in outcome.output
    )


@pytest.mark.parametrize("outcome", ["slow_reply"], indirect=True)
def test_a_slow_reply_is_abandoned_at_the_timeout(outcome: Outcome) -> None:
    # The held reply (600 s) was still unsent when the whole run had ended: the wait gave it up and asked again.
    answered = outcome.status_replies_at_end
    assert outcome.status_requests_at_end == sum(status == 200 for status in answered) + 1
    assert answered[-1] == 200 and len(answered) >= 2  # the first check, and the retry that saw SUCCESS


@pytest.mark.parametrize("outcome", ["download_cut_off_then_rerun"], indirect=True)
def test_a_retried_download_fetches_each_preview_whole(outcome: Outcome) -> None:
    previews = outcome.standin.requests("preview")
    assert len(previews) == 1 + RETRIES + 2  # the cut-off attempts, then both previews
    assert len(outcome.result.xcom("download")) == 2


def test_the_docs_table_is_the_tested_matrix() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "faults.md").read_text()
    rows = [line for line in docs.splitlines() if line.startswith("| ") and not line.startswith("| fault")]
    rows = [row for row in rows if not set(row) <= set("|- ")]
    assert rows == [case.doc for case in CASES.values()]
