"""Run every benchmark, write benchmarks/results/*.json, summary.md and waiting.png, print the table.

``.venv/bin/python -m benchmarks.run`` (about 6-8 minutes) or ``--quick`` (a smoke run of about a
minute, written to benchmarks/results/tmp/quick/ so it never replaces the committed results).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # ``python benchmarks/run.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import RESULTS, TMP, machine, write_json
from benchmarks.download import run_download
from benchmarks.report import plot, summary_markdown
from benchmarks.setup_cost import run_setup_cost
from benchmarks.waiting import IMPLS, run_waiting

FULL: dict[str, Any] = {
    "sizes": (100, 1000, 3000),
    "tls_sizes": (1000,),  # also through the TLS proxy
    "latency_sizes": (3000,),  # also with every status reply LATENCY seconds late
    "pending": 22.0,
    "interval": 5.0,
    "download": 100_000_000,
}
QUICK: dict[str, Any] = {
    "sizes": (100, 300),
    "tls_sizes": (100,),
    "latency_sizes": (300,),
    "pending": 6.5,
    "interval": 2.0,
    "download": 10_000_000,
}
LATENCY = 0.25
# pending is not a multiple of the interval, so no design's poll lands exactly on the moment a task ends.


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _waiting(config: dict[str, Any]) -> list[dict[str, Any]]:
    runs = []
    plan = [(n, False, 0.0) for n in config["sizes"]]
    plan += [(n, True, 0.0) for n in config["tls_sizes"]]
    plan += [(n, False, LATENCY) for n in config["latency_sizes"]]
    for n, tls, latency in plan:
        for impl in IMPLS:
            _log(f"waiting: {impl} N={n}{' TLS' if tls else ''}{f' latency {latency:g} s' if latency else ''}")
            try:
                runs.append(run_waiting(impl, n, config["pending"], config["interval"], tls=tls, latency=latency))
            except Exception as error:  # keep going: a failed run is a result too
                traceback.print_exc()
                failed = {"impl": impl, "n": n, "tls": tls, "error": f"{type(error).__name__}: {error}"[:300]}
                runs.append(failed | ({"latency_s": latency} if latency else {}))
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (small N, short waits)")
    parser.add_argument("--out", type=Path, default=None, help="results directory (default: benchmarks/results)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="the N values of the waiting benchmark")
    parser.add_argument("--no-tls", action="store_true", help="skip the waiting runs through the TLS proxy")
    parser.add_argument("--no-latency", action="store_true", help="skip the waiting runs with a slow stand-in")
    args = parser.parse_args(argv)
    config = dict(QUICK if args.quick else FULL)
    if args.sizes:
        config["sizes"] = tuple(args.sizes)
    if args.no_tls:
        config["tls_sizes"] = ()
    if args.no_latency:
        config["latency_sizes"] = ()
    out = args.out or (TMP / "quick" if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    about = {"machine": machine(), "quick": args.quick}

    waiting = _waiting(config)
    write_json(
        out / "waiting.json",
        {**about, "pending_s": config["pending"], "interval_s": config["interval"], "runs": waiting},
    )
    _log("setup cost")
    setup = run_setup_cost(args.quick)
    write_json(out / "setup_cost.json", {**about, **setup})
    _log("download")
    try:
        download = run_download(config["download"], repetitions=1 if args.quick else 3)
    except Exception as error:
        traceback.print_exc()
        download = {"error": f"{type(error).__name__}: {error}"[:300]}
    write_json(out / "download.json", {**about, **download})

    table = summary_markdown(waiting, setup, download)
    loads = ", ".join(f"{run['loadavg_1m_after']:.1f}" for run in waiting if "loadavg_1m_after" in run)
    note = (
        f"Measured {time.strftime('%Y-%m-%d')} on {about['machine']['cpus']} CPUs, Python "
        f"{about['machine']['python']}, aiohttp {about['machine']['aiohttp']}; wait {config['pending']:g} s, "
        f"poll interval {config['interval']:g} s; targets judged at N={1000 if 1000 in config['sizes'] else 'mid'}. "
        f"Load average (1 min) after each waiting run: {loads}. See benchmarks/README.md for what each figure means.\n"
    )
    (out / "summary.md").write_text("# Benchmark summary\n\n" + note + "\n" + table)
    plot([run for run in waiting if "error" not in run], out / "waiting.png")
    print(table)
    _log(f"done in {time.monotonic() - started:.0f} s; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
