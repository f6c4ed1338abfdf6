"""One deadline per sync request: at its time, the request's sockets are shut down, so a blocked read ends.

``requests`` applies its timeout to each read of the socket, so a reply that trickles in one byte at a
time never times out. Here every sync request runs inside ``deadline(seconds)``; the transport's
connections ``watch`` their sockets, and when the time is up one watchdog thread (shared by the
process, so a request costs no thread of its own) shuts them down. The blocked read then fails, and
the transport, seeing ``expired``, reports a timeout.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any


class Deadline:
    """The deadline of one request: the sockets it watches are shut down at ``at`` unless it stopped first."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[Any] = []
        self._lock = threading.Lock()
        self.stopped = False

    def watch(self, sock: Any) -> None:
        """Shut ``sock`` down at the deadline (at once, if it has passed)."""
        with self._lock:
            if self.stopped:
                return
            if self.expired:
                _shut(sock)
            else:
                self._sockets.append(sock)

    def stop(self) -> None:
        """The request is past what the deadline covers: no socket is shut from now on."""
        with self._lock:
            self.stopped = True
            self._sockets.clear()

    def _expire(self) -> None:
        with self._lock:
            if self.stopped:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: Any) -> None:
    raw = sock if isinstance(sock, socket.socket) else getattr(sock, "socket", None)
    if isinstance(raw, socket.socket):
        with suppress(OSError):  # the plain socket's shutdown: a TLS socket's state is left to its reader
            socket.socket.shutdown(raw, socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread that expires the deadlines of this process, earliest first."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._due: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._prune_at = 1024
        self._thread = threading.Thread(target=self._run, name="camb-request-deadlines", daemon=True)
        self._thread.start()

    def add(self, clock: Deadline) -> None:
        with self._wake:
            if len(self._due) >= self._prune_at:  # finished requests leave their deadlines; drop them now and then
                self._due = [entry for entry in self._due if not entry[2].stopped]
                heapq.heapify(self._due)
                self._prune_at = max(1024, 2 * len(self._due))
            heapq.heappush(self._due, (clock.at, next(self._order), clock))
            if self._due[0][2] is clock:
                self._wake.notify()

    def _run(self) -> None:
        with self._wake:
            while True:
                now = time.monotonic()
                while self._due and self._due[0][0] <= now:
                    heapq.heappop(self._due)[2]._expire()  # a stopped deadline just leaves the queue
                self._wake.wait(self._due[0][0] - now if self._due else None)


_watchdog: _Watchdog | None = None
_watchdog_lock = threading.Lock()
_current: ContextVar[Deadline | None] = ContextVar("camb_request_deadline", default=None)


def _the_watchdog() -> _Watchdog:
    """The process's watchdog; a forked child (Airflow's task runner) starts its own, threads do not fork."""
    global _watchdog
    with _watchdog_lock:
        if _watchdog is None or _watchdog._pid != os.getpid():
            _watchdog = _Watchdog()
        return _watchdog


@contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """Every socket the requests inside use is shut down ``seconds`` from now, unless they finished first."""
    clock = Deadline(seconds)
    token = _current.set(clock)
    _the_watchdog().add(clock)
    try:
        yield clock
    finally:
        clock.stop()
        _current.reset(token)


def watch(sock: Any) -> None:
    """Put ``sock`` under the deadline of the request running in this context, if there is one."""
    clock = _current.get()
    if clock is not None:
        clock.watch(sock)
