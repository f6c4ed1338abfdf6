"""The summary table (markdown, with targets and pass/miss) and the plot, from the result dictionaries."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGET_N = 1000  # the targets are stated for N=1000 unless said otherwise
_STYLES = (("ours", False, "o-"), ("peer", False, "s--"), ("ours", True, "o:"), ("peer", True, "s:"))


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if abs(value) >= 100 or (value == int(value) and abs(value) >= 10):
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("pass" if ok else "**miss**")


def _kind(run: dict[str, Any]) -> tuple[bool, float]:
    """(through TLS, added latency): the variant of a waiting run besides its N."""
    return bool(run.get("tls")), float(run.get("latency_s", 0.0))


def _find(waiting: list[dict[str, Any]], impl: str, n: int, kind: tuple[bool, float]) -> dict[str, Any] | None:
    for run in waiting:
        if run.get("impl") == impl and run.get("n") == n and _kind(run) == kind:
            return run
    return None


def _waiting_rows(waiting: list[dict[str, Any]]) -> list[list[str]]:
    rows: list[list[str]] = []
    sizes = sorted({run["n"] for run in waiting if "n" in run})
    target_n = TARGET_N if TARGET_N in sizes else (sizes[len(sizes) // 2] if sizes else TARGET_N)
    largest = max(sizes, default=0)
    plain = (False, 0.0)
    variants = [(n, plain) for n in sizes]
    variants += sorted({(run["n"], _kind(run)) for run in waiting if "n" in run and _kind(run) != plain})
    for n, kind in variants:
        ours, peer = _find(waiting, "ours", n, kind), _find(waiting, "peer", n, kind)
        tls, latency = kind
        label = f"{n}" + (" TLS" if tls else "") + (f" +{latency * 1000:.0f} ms" if latency else "")
        judged = n == target_n and not latency  # the targets hold for the stand-in as it is
        if ours is None or "error" in ours or peer is None or "error" in peer:
            failed = ", ".join(
                f"{name}: {run.get('error', 'missing') if run else 'missing'}"
                for name, run in (("ours", ours), ("peer", peer))
                if run is None or "error" in run
            )
            rows.append(["run failed", label, failed, "", "", "**miss**" if n == largest else "—"])
            continue
        ratio = ours["cpu_per_poll_ms"] / peer["cpu_per_poll_ms"]
        interval = ours["interval_s"]
        rows += [
            [
                "CPU per poll, ms (ours/peer = ratio)",
                label,
                _fmt(ours["cpu_per_poll_ms"], 3),
                _fmt(peer["cpu_per_poll_ms"], 3) + f" ({ratio:.2f}x)",
                "<= 0.3x peer",
                _verdict(ratio <= 0.3 if judged else None),
            ],
            [
                "Added RSS per waiting trigger, KB",
                label,
                _fmt(ours["rss_per_trigger_kb"], 1),
                _fmt(peer["rss_per_trigger_kb"], 1),
                "<= 10 KB",
                _verdict(ours["rss_per_trigger_kb"] <= 10 if judged else None),
            ],
            [
                "Event-loop lag p50 / p99, ms",
                label,
                f"{_fmt(ours['lag_ms']['p50'])} / {_fmt(ours['lag_ms']['p99'])}",
                f"{_fmt(peer['lag_ms']['p50'])} / {_fmt(peer['lag_ms']['p99'])}",
                "p99 <= 10 ms",
                _verdict(ours["lag_ms"]["p99"] <= 10 if judged else None),
            ],
            [
                "Requests per completed task",
                label,
                _fmt(ours["requests_per_task"]),
                _fmt(peer["requests_per_task"]),
                f"<= {ours['requests_target']}",
                _verdict(ours["requests_per_task"] <= ours["requests_target"] if judged else None),
            ],
            [
                "Terminal to event p50 / p99, s",
                label,
                f"{_fmt(ours['terminal_to_event_s']['p50'])} / {_fmt(ours['terminal_to_event_s']['p99'])}",
                f"{_fmt(peer['terminal_to_event_s']['p50'])} / {_fmt(peer['terminal_to_event_s']['p99'])}",
                f"p99 <= {_fmt(interval)} s",
                _verdict(ours["terminal_to_event_s"]["p99"] <= interval if judged else None),
            ],
        ]
        if n == largest and kind == plain:
            complete = ours["completed"] == n and not ours["failures"]
            rows.append(
                [
                    "Completed tasks",
                    label,
                    f"{ours['completed']}/{n}",
                    f"{peer['completed']}/{n}",
                    "all complete",
                    _verdict(complete),
                ]
            )
    return rows


def _setup_rows(setup: dict[str, Any]) -> list[list[str]]:
    names = {
        "ours_first": "ours: shared session, first creation",
        "ours_join": "ours: each further trigger joining it",
        "aiohttp_per_trigger": "aiohttp.ClientSession() per trigger",
        "httpx_per_trigger": "httpx.AsyncClient() per trigger",
    }
    rows = []
    for key, name in names.items():
        row = setup.get(key, {})
        if "cpu_us" not in row:
            rows.append([f"Setup: {name}", "1", row.get("skipped", "n/a"), "", "", "—"])
            continue
        memory = max(row["rss_kb"], row.get("py_kb", 0.0))
        rows.append(
            [f"Setup CPU µs / memory KB: {name}", "1", f"{_fmt(row['cpu_us'], 1)} / {_fmt(memory, 2)}", "", "", "—"]
        )
    return rows


def _download_rows(download: dict[str, Any]) -> list[list[str]]:
    if "ours_mb_s" not in download:
        return [["Download", "", download.get("error", "n/a"), "", "", "**miss**"]]
    ratio = download["ours_mb_s"] / download["curl_mb_s"]
    size = f"{download['bytes'] / 1e6:.0f} MB"
    growth = max(0.0, download["peak_rss_growth_mb"])
    return [
        [
            "Download throughput, MB/s (ours / curl)",
            size,
            _fmt(download["ours_mb_s"], 0),
            f"curl {_fmt(download['curl_mb_s'], 0)} ({ratio:.2f}x)",
            ">= 0.7x curl",
            _verdict(ratio >= 0.7),
        ],
        [
            "Download peak RSS growth, MB",
            size,
            _fmt(growth, 1),
            "",
            "<= 16 MB",
            _verdict(download["peak_rss_growth_mb"] <= 16 * download["bytes"] / 1e8),
        ],
    ]


def summary_markdown(waiting: list[dict[str, Any]], setup: dict[str, Any], download: dict[str, Any]) -> str:
    header = ["Figure", "N", "ours", "peer (HttpSensorTrigger)", "target", "result"]
    rows = _waiting_rows(waiting) + _setup_rows(setup) + _download_rows(download)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def plot(waiting: list[dict[str, Any]], path: Path) -> None:
    """Four panels against N: CPU per poll, added RSS per trigger, loop lag p99, terminal-to-event p99."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    interval = next((run["interval_s"] for run in waiting), None)
    panels: list[tuple[str, Callable[[dict[str, Any]], float], float | None]] = [
        ("CPU per poll (ms)", lambda run: run["cpu_per_poll_ms"], None),
        ("added RSS per waiting trigger (KB)", lambda run: run["rss_per_trigger_kb"], 10.0),
        ("event-loop lag p99 (ms)", lambda run: run["lag_ms"]["p99"], 10.0),
        ("terminal to event p99 (s)", lambda run: run["terminal_to_event_s"]["p99"], interval),
    ]
    figure, axes = plt.subplots(2, 2, figsize=(9, 6.5), dpi=100)
    for axis, (title, value, target) in zip(axes.flat, panels, strict=True):
        if target is not None:
            axis.axhline(target, color="grey", linestyle="--", linewidth=0.8, label="target")
        for impl, tls, style in _STYLES:
            chosen = [run for run in waiting if run.get("impl") == impl and _kind(run) == (tls, 0.0)]
            runs = sorted((run for run in chosen if "error" not in run), key=lambda run: run["n"])
            if runs:
                label = impl + (" (TLS)" if tls else "")
                axis.plot([run["n"] for run in runs], [value(run) for run in runs], style, label=label)
        axis.set_xscale("log")
        if "RSS" in title or "lag" in title:
            axis.set_yscale("log")
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("concurrent triggers N", fontsize=9)
        axis.grid(True, which="both", alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    figure.suptitle("TextToVoiceTrigger (ours) vs HttpSensorTrigger (peer), one asyncio loop", fontsize=11)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
