"""Waiting under a rate limit: N triggers on one API key against a stand-in allowing LIMIT requests per second.

``.venv/bin/python -m benchmarks.rate_limit`` (about 4 minutes) runs, each in a fresh worker process and
against a fresh stand-in (see ``waiting.py``), ours and ``HttpSensorTrigger`` at N=1000:

- limited: the stand-in answers 100 requests per second per key, then 429 with ``Retry-After``; no
  ``max_requests_per_second`` is configured, so our limiter has to learn the limit;
- unlimited: the stand-in as it is, for the CPU per poll (no 429 anywhere).

It writes ``results/rate_limit.json`` and ``results/rate_limit.md`` (figures, targets, pass or miss)
and prints the table. Options: ``--n``, ``--limit``, ``--out``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # ``python benchmarks/rate_limit.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import RESULTS, machine, write_json
from benchmarks.waiting import IMPLS, run_waiting

PENDING = 22.0  # seconds until each CAMB task ends (not a multiple of the interval)
INTERVAL = 5.0


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"


def _verdict(ok: bool) -> str:
    return "pass" if ok else "**miss**"


def _failed(run: dict[str, Any]) -> int:
    return int(run["n"] - run["completed"] + run["timed_out"] + sum(run["failures"].values()))


def table(limited: dict[str, dict[str, Any]], free: dict[str, dict[str, Any]], n: int, limit: int) -> str:
    """The markdown table of the figures the issue asks for, with targets."""
    ours, peer = limited["ours"], limited["peer"]
    delay_target = INTERVAL + n / limit
    ratio = free["ours"]["cpu_per_poll_ms"] / free["peer"]["cpu_per_poll_ms"]
    rows = [
        ["Refused with 429, share of status requests", f"{100 * ours['refused_share']:.2f} %",
         f"{100 * peer['refused_share']:.2f} %", "<= 1 %", _verdict(ours["refused_share"] <= 0.01)],
        ["Status requests (answered + refused)", str(ours["status_requests"]), str(peer["status_requests"]), "", ""],
        ["Requests per completed task", _fmt(ours["requests_per_task"]), _fmt(peer["requests_per_task"]), "", ""],
        ["Terminal to event p50 / p99, s",
         f"{_fmt(ours['terminal_to_event_s']['p50'])} / {_fmt(ours['terminal_to_event_s']['p99'])}",
         f"{_fmt(peer['terminal_to_event_s']['p50'])} / {_fmt(peer['terminal_to_event_s']['p99'])}",
         f"p99 <= {delay_target:g} s (interval + N/limit)",
         _verdict(ours["terminal_to_event_s"]["p99"] <= delay_target)],
        ["Failed or unfinished waits", str(_failed(ours)), str(_failed(peer)), "0", _verdict(_failed(ours) == 0)],
        ["CPU per poll, ms", _fmt(ours["cpu_per_poll_ms"], 3), _fmt(peer["cpu_per_poll_ms"], 3), "", ""],
        ["Unlimited: CPU per poll, ms (ours/peer)", _fmt(free["ours"]["cpu_per_poll_ms"], 3),
         f"{_fmt(free['peer']['cpu_per_poll_ms'], 3)} ({ratio:.2f}x)", "<= 0.3x peer", _verdict(ratio <= 0.3)],
        ["Unlimited: requests per task", _fmt(free["ours"]["requests_per_task"]),
         _fmt(free["peer"]["requests_per_task"]), "", ""],
    ]  # fmt: skip
    header = [f"Figure (N={n}, limit {limit}/s)", "ours", "peer (HttpSensorTrigger)", "target", "result"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=100, help="the stand-in's requests per second per key")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    runs: dict[str, dict[str, dict[str, Any]]] = {"limited": {}, "unlimited": {}}
    for mode, limit in (("limited", args.limit), ("unlimited", None)):
        for impl in IMPLS:
            _log(f"{mode}: {impl} N={args.n}")
            runs[mode][impl] = run_waiting(impl, args.n, PENDING, INTERVAL, rate_limit=limit)
    markdown = table(runs["limited"], runs["unlimited"], args.n, args.limit)
    loads = ", ".join(f"{run['loadavg_1m_after']:.1f}" for mode in runs.values() for run in mode.values())
    note = (
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} UTC on {os.cpu_count()} shared CPUs; tasks end {PENDING:g} s "
        f"after the start, poll interval {INTERVAL:g} s; no max_requests_per_second configured. Load average "
        f"(1 min) after each run (limited ours, peer; unlimited ours, peer): {loads}.\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "rate_limit.json", {"machine": machine(), "n": args.n, "limit": args.limit, **runs})
    (args.out / "rate_limit.md").write_text("# Waiting under a rate limit\n\n" + note + "\n" + markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
