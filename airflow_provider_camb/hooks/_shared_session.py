"""One aiohttp session per event loop, shared by every CAMB hook and trigger running on it.

A triggerer runs thousands of triggers in one loop. Sharing one session means one connection pool
and one TLS context for all of them, instead of a TCP/TLS setup per trigger or per poll. Users
hold the session with ``async with shared_session()``; the last one out closes it, on every exit
path, cancellation included.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

from airflow_provider_camb import __version__


@dataclass
class _Entry:
    session: aiohttp.ClientSession
    users: int = 0


_ENTRIES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Entry] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def shared_session() -> AsyncIterator[aiohttp.ClientSession]:
    """The running loop's shared session, created on first use and closed when its last user leaves."""
    loop = asyncio.get_running_loop()
    entry = _ENTRIES.get(loop)
    if entry is None or entry.session.closed:
        entry = _Entry(
            aiohttp.ClientSession(
                headers={"User-Agent": f"airflow-provider-camb/{__version__}"},
                # Cookies are not part of the CAMB API; never carry one from a host to another.
                cookie_jar=aiohttp.DummyCookieJar(),
                # Each trigger has at most one request in flight, so the triggers already bound the pool;
                # aiohttp's default cap of 100 would limit polling to 100 / latency requests per second.
                connector=aiohttp.TCPConnector(limit=0),
            )
        )
        _ENTRIES[loop] = entry
    entry.users += 1
    try:
        yield entry.session
    finally:
        entry.users -= 1
        if entry.users == 0:
            if _ENTRIES.get(loop) is entry:
                del _ENTRIES[loop]
            await entry.session.close()


def open_sessions() -> int:
    """How many shared sessions are open in this process (tests and benchmarks read it)."""
    return sum(1 for entry in _ENTRIES.values() if not entry.session.closed)
