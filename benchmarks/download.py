"""Download: one large preview from the stand-in's preview server, through ``CambHook.download_link``
to a file, against ``curl`` on the same URL, alternating, in the same run.

Ours runs in a fresh child process per repetition: it warms up on a small preview, resets its peak RSS
(Linux ``clear_refs``), downloads, and reports the peak RSS growth (``ru_maxrss`` after minus RSS before).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._common import PYTHON, REPO, TMP, StandIn, max_rss_bytes, reset_peak_rss, rss_bytes, worker_env


def worker(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--warmup-url", required=True)
    parser.add_argument("--target", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    import gc

    from airflow_provider_camb.hooks.camb import CambHook

    hook = CambHook()
    hook.download_link(args.warmup_url, args.target, what="a preview")
    gc.collect()
    reset = reset_peak_rss()
    rss_before, peak_before = rss_bytes(), max_rss_bytes()
    started = time.perf_counter()
    downloaded = hook.download_link(args.url, args.target, what="a preview")
    seconds = time.perf_counter() - started
    peak_after = max_rss_bytes()
    hook.close()
    result = {
        "bytes": downloaded.bytes,
        "seconds": seconds,
        "peak_growth": peak_after - (rss_before if reset else peak_before),
        "peak_reset": reset,
    }
    args.out.write_text(json.dumps(result))


def _preview_url(standin: StandIn, task_id: str) -> str:
    import requests

    headers = {"x-api-key": standin.api_key}
    status = requests.get(f"{standin.api_url}/text-to-voice/{task_id}", headers=headers, timeout=30).json()
    reply = requests.get(f"{standin.api_url}/text-to-voice-result/{status['run_id']}", headers=headers, timeout=30)
    return str(reply.json()["previews"][0])


def _curl(url: str, target: Path) -> dict[str, float]:
    written = subprocess.run(
        ["curl", "-sS", "--fail", "-o", str(target), "-w", "%{size_download} %{time_total}", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout.split()
    return {"bytes": float(written[0]), "seconds": float(written[1])}


def _ours(standin: StandIn, url: str, warmup_url: str, target: Path) -> dict[str, Any]:
    out = TMP / "download-out.json"
    out.unlink(missing_ok=True)
    command = [PYTHON, "-m", "benchmarks.download", "--url", url, "--warmup-url", warmup_url]
    command += ["--target", str(target), "--out", str(out)]
    env = worker_env(AIRFLOW_CONN_CAMB_DEFAULT=standin.camb_connection())
    with open(TMP / "download-worker.log", "wb") as log:
        subprocess.run(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=300)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def run_download(size: int, repetitions: int) -> dict[str, Any]:
    """Median throughput of ours and of curl (MB/s, 10^6 bytes) and ours' worst peak RSS growth."""
    if shutil.which("curl") is None:
        raise RuntimeError("curl is not installed (apt-get install -y curl)")
    target = TMP / "preview.wav"
    with StandIn("--preview-bytes", str(size), log_name="standin-download") as standin:
        from airflow_provider_camb.testing.client import CambStandInClient

        client = CambStandInClient(standin.api_url)
        url = _preview_url(standin, client.add_task(status="SUCCESS"))
        client.configure(preview_bytes=4096)
        warmup_url = _preview_url(standin, client.add_task(status="SUCCESS"))
        client.close()
        ours, curl = [], []
        try:
            for _ in range(repetitions):
                curl.append(_curl(url, target))
                ours.append(_ours(standin, url, warmup_url, target))
        finally:
            target.unlink(missing_ok=True)
    for run in ours + curl:
        if int(run["bytes"]) < size - 64:
            raise RuntimeError(f"short download: {run}")
    return {
        "bytes": size,
        "repetitions": repetitions,
        "ours_mb_s": statistics.median(run["bytes"] / run["seconds"] / 1e6 for run in ours),
        "curl_mb_s": statistics.median(run["bytes"] / run["seconds"] / 1e6 for run in curl),
        "peak_rss_growth_mb": max(run["peak_growth"] for run in ours) / 2**20,
        "peak_reset": all(run["peak_reset"] for run in ours),
        "curl_version": os.popen("curl --version").readline().split(" ")[1],  # noqa: S605
    }


if __name__ == "__main__":
    worker(sys.argv[1:])
