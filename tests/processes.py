"""Ending the child processes that tests and benchmarks start (moto, the stand-in, a TLS proxy)."""

from __future__ import annotations

import subprocess
from typing import Any


def end_process(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM ``process`` if it still runs; SIGKILL it if it has not exited ``grace`` seconds later."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace)
