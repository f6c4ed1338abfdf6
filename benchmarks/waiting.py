"""Waiting cost: N triggers polling the stand-in in one asyncio loop, as the triggerer runs them.

``run_waiting()`` (the orchestrator) starts a fresh stand-in and a fresh worker process per
(implementation, N), so counters and RSS start clean. The worker (``python -m benchmarks.waiting``)
imports everything, runs one warm-up trigger, signals ready, then on ``GO`` starts N triggers as
tasks of one loop, iterates each ``run()`` to its event, and writes what it measured to a JSON file.

- ``ours``: ``TextToVoiceTrigger`` polling ``GET /text-to-voice/{task_id}``; every CAMB task is
  created before GO so that it becomes terminal ``pending`` seconds after GO.
- ``peer``: the HTTP provider's ``HttpSensorTrigger``, which waits until its endpoint stops answering
  404. It polls the same stand-in endpoint, ``GET /text-to-voice/{task_id}``, for ids the stand-in
  does not know yet (404); the orchestrator registers each id as ``SUCCESS`` through the stand-in's
  control API ``pending`` seconds after GO. So both poll the same server and handler.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import resource
import subprocess
import sys
import time
import uuid
from array import array
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

from benchmarks._common import PYTHON, REPO, TMP, StandIn, open_fds, percentile, rss_bytes, worker_env
from benchmarks.tls_proxy import TlsProxy

IMPLS = ("ours", "peer")
TICK = 0.010  # the lag ticker's sleep, seconds
RSS_EVERY = 0.25  # seconds between RSS samples
PEER_CONN_ID = "http_camb"
PROVIDER_PATH_ENV = "CAMB_BENCH_PROVIDER_PATH"  # a directory holding another airflow_provider_camb


class _Trigger(Protocol):
    def run(self) -> AsyncIterator[Any]: ...


# --- worker (the measured process) ---------------------------------------------------------------


def _make_trigger(impl: str, task_id: str, interval: float, deadline: float, first_poll_now: bool = False) -> _Trigger:
    if impl == "ours":
        from airflow_provider_camb.triggers.text_to_voice import TextToVoiceTrigger

        return TextToVoiceTrigger(
            camb_task_id=task_id,
            poll_interval=interval,
            deadline=deadline,
            wait_before_first_poll=not first_poll_now,  # what the sensor defers with
        )
    from airflow.providers.http.triggers.http import HttpSensorTrigger

    return HttpSensorTrigger(
        endpoint=f"text-to-voice/{task_id}", http_conn_id=PEER_CONN_ID, method="GET", poke_interval=interval
    )


async def _first_event(trigger: _Trigger, task_id: str, events: dict[str, float], failures: Counter[str]) -> None:
    """Iterate ``run()`` like the triggerer does, noting when the first event came."""
    try:
        async for event in trigger.run():
            payload = getattr(event, "payload", None)
            ok = payload is True or (isinstance(payload, dict) and payload.get("status") == "SUCCESS")
            if task_id not in events and ok:
                events[task_id] = time.time()
            elif not ok:
                failures[f"event {payload!r}"[:80]] += 1
    except Exception as error:
        failures[type(error).__name__] += 1


async def _ticker(stop: asyncio.Event, lags_ms: array[float], slow: list[tuple[float, float]] | None = None) -> None:
    """Sleep 10 ms again and again; record how late each wake-up is (and when, if over 20 ms)."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(TICK)
        lag = (loop.time() - start - TICK) * 1000
        lags_ms.append(lag)
        if slow is not None and lag > 20:
            slow.append((round(time.time(), 3), round(lag, 1)))


async def _sample_rss(stop: asyncio.Event, samples: list[tuple[float, int, float, int]]) -> None:
    """RSS, plus CPU time and open file descriptors (sockets) for diagnosis, every RSS_EVERY seconds."""
    while not stop.is_set():
        samples.append((time.time(), rss_bytes(), time.process_time(), open_fds()))
        await asyncio.sleep(RSS_EVERY)


class _GcPauses:
    """Garbage-collector pauses of 10 ms or more (a full collection walks every object of Airflow's heap)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, int, float]] = []
        self.full_collections = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        self.full_collections += info["generation"] == 2
        if took >= 0.010:
            self.pauses.append((round(time.time(), 3), info["generation"], round(took * 1000, 1)))


async def _harness_cpu_rate(seconds: float = 2.0) -> float:
    """CPU seconds per second that the ticker and the sampler cost on an otherwise idle loop.

    On a virtual machine every loop wake-up costs CPU (about 0.15 ms here), so the 10 ms ticker
    alone costs about 1.5 % of a core: subtracted from the triggers' CPU time.
    """
    stop = asyncio.Event()
    helpers = [asyncio.create_task(_ticker(stop, array("d"))), asyncio.create_task(_sample_rss(stop, []))]
    started, cpu = time.monotonic(), time.process_time()
    await asyncio.sleep(seconds)
    rate = (time.process_time() - cpu) / (time.monotonic() - started)
    stop.set()
    await asyncio.gather(*helpers)
    return rate


async def _measure(impl: str, ids: list[str], interval: float, t_term: float, deadline: float) -> dict[str, Any]:
    stop = asyncio.Event()
    lags: array[float] = array("d")
    rss: list[tuple[float, int, float, int]] = []
    events: dict[str, float] = {}
    failures: Counter[str] = Counter()
    t_go, cpu_go, usage_go = time.time(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
    gc_pauses = _GcPauses()
    gc.callbacks.append(gc_pauses)
    gc_before = [generation["collections"] for generation in gc.get_stats()]
    slow: list[tuple[float, float]] = []
    helpers = [asyncio.create_task(_ticker(stop, lags, slow)), asyncio.create_task(_sample_rss(stop, rss))]
    tasks = [
        asyncio.create_task(_first_event(_make_trigger(impl, task_id, interval, deadline), task_id, events, failures))
        for task_id in ids
    ]
    limit = (t_term - t_go) + 4 * interval + 60
    _, late = await asyncio.wait(tasks, timeout=limit)
    cpu_seconds = time.process_time() - cpu_go
    usage = resource.getrusage(resource.RUSAGE_SELF)
    wall_seconds = time.time() - t_go
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    stop.set()
    await asyncio.gather(*helpers)
    gc.callbacks.remove(gc_pauses)
    gc_after = [generation["collections"] for generation in gc.get_stats()]
    gc_counts = [after - before for after, before in zip(gc_after, gc_before, strict=True)]
    # RSS while every trigger waits: from two intervals after GO (all have polled, connections open)
    # until the tasks become terminal.
    waiting = [sample for sample in rss if t_go + 2 * interval <= sample[0] < t_term - RSS_EVERY] or rss[-1:]
    result: dict[str, Any] = {
        "t_go": t_go,
        "cpu_s": cpu_seconds,
        "sys_s": usage.ru_stime - usage_go.ru_stime,
        "wall_s": wall_seconds,
        "timeline": [(round(at - t_go, 2), value, round(cpu - cpu_go, 4), fds) for at, value, cpu, fds in rss],
        "rss_wait": max(sample[1] for sample in waiting),
        "fds_wait": max(sample[3] for sample in waiting) - rss[0][3],
        "lag_ms": {"p50": percentile(lags, 50), "p99": percentile(lags, 99), "max": max(lags, default=math.nan)},
        "lag_samples": len(lags),
        "slow_ticks": [(round(at - t_go, 2), lag) for at, lag in slow],
        "gc_full_collections": gc_pauses.full_collections,
        "gc_collections": gc_counts,
        "gc_pauses": [(round(at - t_go, 2), generation, ms) for at, generation, ms in gc_pauses.pauses],
        "events": events,
        "timed_out": len(late),
        "failures": dict(failures),
    }
    if impl == "ours":
        import airflow_provider_camb
        from airflow_provider_camb.hooks._shared_session import open_sessions

        result["open_sessions_after"] = open_sessions()
        result["provider"] = str(Path(airflow_provider_camb.__file__).parent)
    return result


async def _warm_up(impl: str, task_id: str) -> None:
    """One full trigger run first, so lazy imports and first-use caches are not counted per trigger."""
    events: dict[str, float] = {}
    failures: Counter[str] = Counter()
    trigger = _make_trigger(impl, task_id, 0.1, time.time() + 60, first_poll_now=True)
    await _first_event(trigger, task_id, events, failures)
    if task_id not in events:
        raise RuntimeError(f"warm-up trigger failed: {dict(failures)}")


def worker(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=IMPLS, required=True)
    parser.add_argument("--interval", type=float, required=True)
    parser.add_argument("--ids", type=Path, required=True)
    parser.add_argument("--warmup-id", required=True)
    parser.add_argument("--ready", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if os.environ.get(PROVIDER_PATH_ENV):  # measure a modified copy of the provider instead of this checkout
        sys.path.insert(0, os.environ[PROVIDER_PATH_ENV])
    ids: list[str] = json.loads(args.ids.read_text())
    asyncio.run(_warm_up(args.impl, args.warmup_id))
    harness_rate = asyncio.run(_harness_cpu_rate())
    gc.collect()
    args.ready.write_text("ready")
    command = sys.stdin.readline().split()  # "GO <t_term> <deadline>"
    if not command or command[0] != "GO":
        raise SystemExit("no GO")
    t_term, deadline = float(command[1]), float(command[2])
    rss_before = rss_bytes()
    result = asyncio.run(_measure(args.impl, ids, args.interval, t_term, deadline))
    result["rss_before"] = rss_before
    result["harness_cpu_per_s"] = harness_rate
    args.out.write_text(json.dumps(result))


# --- orchestrator --------------------------------------------------------------------------------


async def _add_tasks(api_url: str, ids: list[str], body: Callable[[], dict[str, Any]]) -> dict[str, float]:
    """Create stand-in tasks with the given ids (control API, 32 at a time); return when each was made."""
    import aiohttp

    made: dict[str, float] = {}
    limit = asyncio.Semaphore(32)
    async with aiohttp.ClientSession() as session:

        async def add(task_id: str) -> None:
            async with limit:
                sent = time.time()
                async with session.post(f"{api_url}/_standin/tasks", json={"task_id": task_id, **body()}) as reply:
                    reply.raise_for_status()
                    await reply.read()
                made[task_id] = (sent + time.time()) / 2

        await asyncio.gather(*(add(task_id) for task_id in ids))
    return made


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def run_waiting(
    impl: str,
    n: int,
    pending: float,
    interval: float,
    *,
    tls: bool = False,
    latency: float = 0.0,
    profile: bool = False,
    rate_limit: int | None = None,
) -> dict[str, Any]:
    """One measurement: N triggers of ``impl`` against a fresh stand-in, in a fresh worker process.

    ``tls`` puts the TLS proxy between the triggers and the stand-in (the real API is HTTPS only).
    ``latency`` makes the stand-in answer every status request that many seconds late (its ``slow`` fault).
    ``profile`` runs the worker under ``py-spy record`` (collapsed stacks in results/tmp/waiting-*/).
    ``rate_limit`` makes the stand-in allow that many requests per second, then answer 429 with Retry-After.
    """
    with contextlib.ExitStack() as stack:
        name = f"waiting-{impl}-{n}{'-tls' if tls else ''}{'-slow' if latency else ''}"
        name += f"-limit{rate_limit}" if rate_limit else ""
        standin = stack.enter_context(StandIn("--pending-seconds", str(pending), log_name=f"standin-{name}"))
        env = worker_env()
        host = standin.api_url
        if tls:
            proxy = stack.enter_context(TlsProxy(standin.api_url, TMP / "tls"))
            host = proxy.url
            env["SSL_CERT_FILE"] = str(proxy.cert)
        if latency:
            from airflow_provider_camb.testing.client import CambStandInClient

            control = CambStandInClient(standin.api_url)
            control.inject("slow", endpoint="status", times=10**9, delay=latency)
            control.close()
        if rate_limit:
            from airflow_provider_camb.testing.client import CambStandInClient

            control = CambStandInClient(standin.api_url)
            control.rate_limit(rate_limit)
            control.close()
        env["AIRFLOW_CONN_CAMB_DEFAULT"] = standin.camb_connection(host)
        env["AIRFLOW_CONN_HTTP_CAMB"] = standin.http_connection(host)
        result = _run_with(standin, env, impl, n, pending, interval, profile, name)
    result["tls"] = tls
    result["loadavg_1m_after"] = os.getloadavg()[0]  # other work on the machine skews every figure
    if latency:
        result["latency_s"] = latency
    if rate_limit:
        result["rate_limit_per_s"] = rate_limit
    return result


def _run_with(
    standin: StandIn, env: dict[str, str], impl: str, n: int, pending: float, interval: float, profile: bool, name: str
) -> dict[str, Any]:
    from airflow_provider_camb.testing.client import CambStandInClient

    work = TMP / name
    work.mkdir(parents=True, exist_ok=True)
    ids = [str(uuid.uuid4()) for _ in range(n)]
    (work / "ids.json").write_text(json.dumps(ids))
    for stale in ("ready", "out.json"):
        (work / stale).unlink(missing_ok=True)
    client = CambStandInClient(standin.api_url)
    command = [str(Path(PYTHON).parent / "py-spy"), "record", "--format", "raw", "--rate", "250"] if profile else []
    command += ["-o", str(work / "profile.txt"), "--"] if profile else []
    command += [PYTHON, "-m", "benchmarks.waiting", "--impl", impl, "--interval", str(interval)]
    command += ["--ids", str(work / "ids.json"), "--warmup-id", client.add_task(status="SUCCESS")]
    command += ["--ready", str(work / "ready"), "--out", str(work / "out.json")]
    with open(work / "worker.log", "wb") as log:
        worker_process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env, text=True
        )
        try:
            _wait_ready(worker_process, work / "ready")
            polls_before, standin_cpu_before = client.request_count("status"), standin.cpu_seconds()
            refused_before = client.rate_limited_count()
            if impl == "ours":
                budget = 1.0 + 0.002 * n  # time to create the N tasks before GO
                t_term = time.time() + budget + pending
                asyncio.run(_add_tasks(standin.api_url, ids, lambda: {"pending_seconds": t_term - time.time()}))
                _sleep_until(t_term - pending)
                t_go = _go(worker_process, t_term)
                terminal = dict.fromkeys(ids, t_term)
            else:
                t_go = time.time()
                t_term = t_go + pending
                _go(worker_process, t_term)
                _sleep_until(t_term)
                terminal = asyncio.run(_add_tasks(standin.api_url, ids, lambda: {"status": "SUCCESS"}))
            worker_process.wait(timeout=pending + 4 * interval + 180)
        finally:
            if worker_process.poll() is None:
                worker_process.kill()
                worker_process.wait()
    polls = client.request_count("status") - polls_before
    refused = client.rate_limited_count() - refused_before
    standin_cpu = standin.cpu_seconds() - standin_cpu_before
    client.close()
    if worker_process.returncode != 0:
        raise RuntimeError(f"waiting worker {name} failed; see {work / 'worker.log'}")
    measured = json.loads((work / "out.json").read_text())
    summary = _summarise(impl, n, pending, interval, ids, terminal, t_go, t_term, polls, standin_cpu, measured)
    summary["refused_429"] = refused
    summary["refused_share"] = refused / polls if polls else math.nan
    return summary


def _wait_ready(process: subprocess.Popen[str], ready: Path) -> None:
    deadline = time.monotonic() + 180
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the waiting worker did not get ready; see {ready.parent / 'worker.log'}")
        time.sleep(0.05)


def _go(process: subprocess.Popen[str], t_term: float) -> float:
    assert process.stdin is not None
    t_go = time.time()
    process.stdin.write(f"GO {t_term} {t_go + 600}\n")
    process.stdin.close()
    return t_go


def _summarise(
    impl: str,
    n: int,
    pending: float,
    interval: float,
    ids: list[str],
    terminal: dict[str, float],
    t_go: float,
    t_term: float,
    polls: int,
    standin_cpu: float,
    measured: dict[str, Any],
) -> dict[str, Any]:
    events: dict[str, float] = measured["events"]
    to_event = [events[task_id] - terminal[task_id] for task_id in ids if task_id in events]
    completed = len(to_event)
    duration = t_term - t_go
    cpu = max(0.0, measured["cpu_s"] - measured["harness_cpu_per_s"] * measured["wall_s"])
    return {
        "impl": impl,
        "n": n,
        "pending_s": pending,
        "interval_s": interval,
        "completed": completed,
        "timed_out": measured["timed_out"],
        "failures": measured["failures"],
        "wall_s": measured["wall_s"],
        "cpu_s": cpu,
        "harness_cpu_s": measured["cpu_s"] - cpu,
        "status_requests": polls,
        "cpu_per_poll_ms": 1000 * cpu / polls if polls else math.nan,
        "rss_before_mb": measured["rss_before"] / 2**20,
        "rss_per_trigger_kb": (measured["rss_wait"] - measured["rss_before"]) / n / 1024,
        "peak_sockets_while_waiting": measured["fds_wait"],
        "lag_ms": measured["lag_ms"],
        "gc_collections_per_gen": measured["gc_collections"],
        "gc_max_pause_ms": max((pause[2] for pause in measured["gc_pauses"]), default=0.0),
        "requests_per_task": polls / completed if completed else math.nan,
        "requests_target": math.ceil(duration / interval - 1e-9) + 1,
        "terminal_to_event_s": {
            "p50": percentile(to_event, 50),
            "p99": percentile(to_event, 99),
            "max": max(to_event, default=math.nan),
        },
        "standin_cpu_per_request_ms": 1000 * standin_cpu / polls if polls else math.nan,
        **{key: measured[key] for key in ("open_sessions_after", "provider") if key in measured},
    }


if __name__ == "__main__":
    worker(sys.argv[1:])
