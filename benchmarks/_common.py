"""Shared helpers: the stand-in in its own process, worker environments, memory readings, statistics."""

from __future__ import annotations

import json
import math
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from tests.processes import end_process

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
TMP = RESULTS / "tmp"  # git-ignored scratch space: worker logs, data files, the Airflow home
PYTHON = sys.executable

_ANNOUNCED = re.compile(r"^(CAMB stand-in API|CAMB stand-in previews|API key):\s+(\S+)$")


class StandIn:
    """``python -m airflow_provider_camb.testing`` in a child process, on an ephemeral loopback port."""

    def __init__(self, *args: str, log_name: str = "standin") -> None:
        TMP.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = open(TMP / f"{log_name}.log", "wb")  # noqa: SIM115  # closed in stop()
        self.process = subprocess.Popen(
            [PYTHON, "-m", "airflow_provider_camb.testing", "--host", "127.0.0.1", "--port", "0", "--no-record", *args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=REPO,
            env=worker_env(),
            text=True,
        )
        found: dict[str, str] = {}
        deadline = time.monotonic() + 60
        assert self.process.stdout is not None
        while len(found) < 3:
            line = self.process.stdout.readline()
            if not line or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"The stand-in did not start; see {TMP / f'{log_name}.log'}")
            match = _ANNOUNCED.match(line.strip())
            if match:
                found[match.group(1)] = match.group(2)
        self.api_url = found["CAMB stand-in API"]
        self.preview_url = found["CAMB stand-in previews"]
        self.api_key = found["API key"]

    def camb_connection(self, host: str | None = None) -> str:
        """``AIRFLOW_CONN_CAMB_DEFAULT`` for this stand-in (or for ``host``, a proxy in front of it)."""
        return json.dumps({"conn_type": "camb", "host": host or self.api_url, "password": self.api_key})

    def http_connection(self, host: str | None = None) -> str:
        """``AIRFLOW_CONN_HTTP_CAMB``: the same server as a plain ``http`` connection (the peer's)."""
        return json.dumps({"conn_type": "http", "host": host or self.api_url, "extra": {"x-api-key": self.api_key}})

    def cpu_seconds(self) -> float:
        """User + system CPU time used by the stand-in process so far."""
        import psutil

        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        end_process(self.process, grace=15)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()

    def __enter__(self) -> StandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def worker_env(**extra: str) -> dict[str, str]:
    """The environment of every child: a private Airflow home under results/tmp, never the developer's."""
    home = TMP / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def rss_bytes() -> int:
    """This process's resident set size now (Linux: /proc; elsewhere psutil)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil

        return int(psutil.Process().memory_info().rss)


def open_fds() -> int:
    """How many file descriptors this process holds (sockets included); -1 where unknown."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def max_rss_bytes() -> int:
    """Peak RSS of this process (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS (Linux ``clear_refs``); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def design_run(
    design: str,
    what: str,
    n: int,
    state: str,
    samples: tuple[dict[str, float], dict[str, float]],
    idle: dict[str, float],
    load_before: float,
    digits: int = 3,
) -> dict[str, Any]:
    """The figures every run of a design at N reports first: which design, how the run ended, its wall time
    and, from the ``(start, end)`` samples less the idle rates, its CPU per voice; then the load."""
    start, end = samples
    wall = end["time"] - start["time"]
    cpu = {key: (end[key] - start[key] - idle[key] * wall) / n for key in ("machine", "tree")}
    return {
        "design": design,
        "what": what,
        "n": n,
        "run_state": state,
        "wall_s": rounded(wall, 1),
        **cpu_and_load(cpu, idle, load_before, digits),
    }


def cpu_and_load(cpu: dict[str, float], idle: dict[str, float], load_before: float, digits: int = 3) -> dict[str, Any]:
    """The CPU (per voice, busy and idle, machine and process tree) and load figures of one run, rounded."""
    return {
        "cpu_s_per_voice_machine": rounded(cpu["machine"], digits),
        "cpu_s_per_voice_tree": rounded(cpu["tree"], digits),
        "idle_cpu_per_s_machine": rounded(idle["machine"], 3),
        "idle_cpu_per_s_tree": rounded(idle["tree"], 3),
        "load_1min_before": rounded(load_before, 2),
        "load_1min_after": rounded(os.getloadavg()[0], 2),
    }


def against_design_a(runs: Sequence[dict[str, Any]], run: dict[str, Any], digits: int = 2) -> str:
    """``run``'s CPU-s per voice (tree) as a multiple of design (a)'s at the same N (``"0.41x"``); "" without one."""
    base = next((r for r in runs if r["n"] == run["n"] and r["design"] == "a"), None)
    if not base or not base["cpu_s_per_voice_tree"]:
        return ""
    return f"{run['cpu_s_per_voice_tree'] / base['cpu_s_per_voice_tree']:.{digits}f}x"


def markdown_table(rows: Sequence[Mapping[str, object]]) -> str:
    """A Markdown table of ``rows``, one a line, each a cell by column (as ``str`` gives it); "" for no rows."""
    if not rows:
        return ""
    lines = [list(rows[0]), ["---"] * len(rows[0]), *([str(cell) for cell in row.values()] for row in rows)]
    return "".join(f"| {' | '.join(line)} |\n" for line in lines)


def rounded(value: Any, digits: int = 4) -> Any:
    """Floats rounded to ``digits`` significant digits, recursively, so the committed JSON stays small."""
    if isinstance(value, float):
        if not math.isfinite(value) or value == 0:
            return None if not math.isfinite(value) else 0.0
        return round(value, max(0, digits - 1 - math.floor(math.log10(abs(value)))))
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(item, digits) for item in value]
    return value


def write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rounded(payload), indent=1, sort_keys=False) + "\n")


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    import platform

    import aiohttp

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "provider_modified": bool(git("status", "--porcelain", "--", "airflow_provider_camb")),
        "provider_path": os.environ.get("CAMB_BENCH_PROVIDER_PATH") or None,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "aiohttp": aiohttp.__version__,
    }
