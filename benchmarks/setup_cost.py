"""Setup cost: CPU and memory to build one trigger's HTTP client, in a fresh process.

Each row creates ``count`` clients and holds them all, then divides the process CPU time and the RSS
growth by ``count`` (RSS, not tracemalloc, so memory allocated by OpenSSL for an SSL context counts).
Everything is imported and each kind is built once before measuring.

- ours, first creation: ``shared_session()`` entered in a loop that has none yet (one per new loop);
- ours, joining: each further ``shared_session()`` entered while the loop's session is open;
- ``aiohttp.ClientSession()`` per trigger; ``httpx.AsyncClient()`` per trigger (a naive design).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks._common import rss_bytes


def _per_item(cpu_seconds: float, rss_before: int, rss_after: int, count: int) -> dict[str, Any]:
    return {"cpu_us": 1e6 * cpu_seconds / count, "rss_kb": (rss_after - rss_before) / count / 1024, "count": count}


@contextlib.contextmanager
def _traced(row: dict[str, Any], count: int) -> Iterator[None]:
    """Add ``py_kb``: Python allocations per item (tracemalloc; RSS misses reuse of already resident memory)."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    try:
        yield
        row["py_kb"] = (tracemalloc.get_traced_memory()[0] - before) / count / 1024
    finally:
        tracemalloc.stop()


async def _hold_many(
    make: Callable[[], Awaitable[Any]], close: Callable[[Any], Awaitable[Any]], count: int
) -> dict[str, Any]:
    gc.collect()
    rss_before, cpu_before = rss_bytes(), time.process_time()
    held = [await make() for _ in range(count)]
    cpu = time.process_time() - cpu_before
    row = _per_item(cpu, rss_before, rss_after=rss_bytes(), count=count)
    for item in held:
        await close(item)
    gc.collect()
    with _traced(row, count):  # a second pass, traced (tracemalloc slows the first one down)
        held = [await make() for _ in range(count)]
    for item in held:
        await close(item)
    return row


def _first_creations(count: int) -> dict[str, Any]:
    """``count`` shared sessions, each the first of its own loop; the cost of running a coroutine is subtracted."""
    from airflow_provider_camb.hooks._shared_session import shared_session

    async def nothing() -> None:
        return None

    def enter_all(loops: list[asyncio.AbstractEventLoop]) -> list[contextlib.AbstractAsyncContextManager[Any]]:
        holders: list[contextlib.AbstractAsyncContextManager[Any]] = []
        for loop in loops:
            holder = shared_session()
            loop.run_until_complete(holder.__aenter__())
            holders.append(holder)
        return holders

    def leave_all(loops: list[asyncio.AbstractEventLoop], holders: list[Any]) -> None:
        for loop, holder in zip(loops, holders, strict=True):
            loop.run_until_complete(holder.__aexit__(None, None, None))
            loop.close()

    loops = [asyncio.new_event_loop() for _ in range(count)]
    started = time.process_time()
    for loop in loops:
        loop.run_until_complete(nothing())
    overhead = time.process_time() - started
    gc.collect()
    rss_before, cpu_before = rss_bytes(), time.process_time()
    holders = enter_all(loops)
    cpu = time.process_time() - cpu_before - overhead
    row = _per_item(cpu, rss_before, rss_bytes(), count)
    leave_all(loops, holders)
    loops = [asyncio.new_event_loop() for _ in range(count)]
    for loop in loops:
        loop.run_until_complete(nothing())
    gc.collect()
    with _traced(row, count):
        holders = enter_all(loops)
    leave_all(loops, holders)
    return row


async def _joins(count: int) -> dict[str, Any]:
    from airflow_provider_camb.hooks._shared_session import shared_session

    async with shared_session():

        async def join() -> contextlib.AbstractAsyncContextManager[Any]:
            holder = shared_session()
            await holder.__aenter__()
            return holder

        async def leave(holder: contextlib.AbstractAsyncContextManager[Any]) -> None:
            await holder.__aexit__(None, None, None)

        return await _hold_many(join, leave, count)


async def _per_trigger(client: Callable[[], Any], close: Callable[[Any], Awaitable[Any]], count: int) -> dict[str, Any]:
    """``count`` clients, one per trigger (a naive design): each made by ``client()``, closed by ``close``."""

    async def make() -> Any:
        return client()  # in the running loop, as a trigger makes it

    return await _hold_many(make, close, count)


async def _warm_up() -> None:
    import aiohttp
    import httpx

    from airflow_provider_camb.hooks._shared_session import shared_session

    async with shared_session(), shared_session(), aiohttp.ClientSession(), httpx.AsyncClient():
        pass


def measure(quick: bool) -> dict[str, Any]:
    import aiohttp
    import httpx

    scale = 5 if quick else 1
    asyncio.run(_warm_up())
    rows = {
        "ours_first": _first_creations(200 // scale),
        "ours_join": asyncio.run(_joins(3000 // scale)),
        "aiohttp_per_trigger": asyncio.run(
            _per_trigger(aiohttp.ClientSession, aiohttp.ClientSession.close, 1000 // scale)
        ),
        "httpx_per_trigger": asyncio.run(_per_trigger(httpx.AsyncClient, httpx.AsyncClient.aclose, 100 // scale)),
    }
    return rows


def run_setup_cost(quick: bool) -> dict[str, Any]:
    """Measure in a fresh child process (clean RSS); return its rows."""
    import subprocess

    from benchmarks._common import PYTHON, REPO, TMP, worker_env

    out = TMP / "setup-cost.json"
    out.unlink(missing_ok=True)
    command = [PYTHON, "-m", "benchmarks.setup_cost", "--out", str(out)] + (["--quick"] if quick else [])
    subprocess.run(command, cwd=REPO, env=worker_env(), check=True, timeout=300)
    rows: dict[str, Any] = json.loads(out.read_text())
    return rows


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    args.out.write_text(json.dumps(measure(args.quick)))


if __name__ == "__main__":
    main(sys.argv[1:])
