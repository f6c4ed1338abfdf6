"""One rate limit per CAMB API key, shared by every wait in an event loop (a triggerer), and the key's settings.

A triggerer runs thousands of waits in one loop, all polling with the same API key, and CAMB limits
the key, not the wait. So per (event loop, connection) this module keeps:

- the connection's settings, read once for every wait on it and read again after ``SETTINGS_TTL``
  seconds, or at once when CAMB refuses their key (a rotated key is picked up); concurrent reads share one;
- one ``KeyLimiter`` per API key (connections that hold the same key share it) that every status poll
  on the key passes through:

  * a 429's ``Retry-After`` (or ``X-RateLimit-Reset``) pauses every poll on the key until then, not
    only the one that received it; afterwards the polls resume one by one, evenly spaced;
  * CAMB does not publish its limits, so the limiter learns one: on the first 429 it paces the key at
    ``CUT`` times the rate CAMB answered in the last second, then raises the rate slowly while polls
    have to queue and succeed (``RAISE_SHARE`` of the rate plus ``RAISE_FLOOR`` per second), and cuts
    again on the next 429. The rate settles just under the server's limit;
  * the connection extra ``max_requests_per_second`` caps the rate from the start (no cap by default).

A poll that has to wait for its turn is delayed, never dropped; one whose turn would come after its
wait's deadline ends at the deadline with a transient ``CambRateLimitError`` (the wait ends as a
timeout). While no limit is active (no cap, no 429 yet) a poll costs one attribute test here and a
counter increment afterwards: no await, no timer, no allocation.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from airflow_provider_camb.exceptions import CambRateLimitError
from airflow_provider_camb.hooks._retry import MAX_RETRY_AFTER
from airflow_provider_camb.settings import CambSettings

log = logging.getLogger(__name__)

#: Seconds a connection's settings are reused before they are read again.
SETTINGS_TTL = 60.0
#: When reading them again fails, the last settings serve this many seconds more before the next try.
SETTINGS_RETRY = 10.0
#: On a 429 the rate becomes this share of what CAMB answered in the last second.
CUT = 0.9
#: While polls queue and succeed, the rate grows by this share of itself per second...
RAISE_SHARE = 0.02
#: ...and at least by this many requests per second, per second.
RAISE_FLOOR = 0.5
#: The learnt rate never drops below this (requests per second).
MIN_RATE = 0.2
#: The rate assumed when a 429 comes before CAMB answered anything in the last second.
FALLBACK_RATE = 1.0
#: The pause after a 429 that names no delay, in seconds.
DEFAULT_PAUSE = 1.0
_BUCKETS = 10  # answered polls are counted in ten 100 ms buckets: the last second


class KeyLimiter:
    """The pace of the status polls on one API key in one event loop (see the module docstring).

    ``interval`` is the spacing between polls in seconds; 0 means no limit is active.
    ``epoch`` grows on every 429 that changed the limit: polls remember it, so a 429 to a poll sent
    before the last change is old news and cuts nothing, and a waiting poll whose turn was given out
    before a change asks again.
    """

    def __init__(self, cap: float | None = None) -> None:
        self._cap = math.inf if cap is None else cap
        self._learnt = math.inf
        self.interval = 0.0
        self.epoch = 0
        self._next = 0.0  # monotonic time (the loop's clock) of the next free turn
        self._paused_until = 0.0
        self._saturated = False  # the last poll had to wait for its turn
        self._answered = [0] * _BUCKETS
        self._bucket = 0
        self._pace()

    @property
    def rate(self) -> float:
        """Polls per second allowed now (``math.inf``: no limit)."""
        return min(self._cap, self._learnt)

    @property
    def paused_until(self) -> float:
        """Monotonic time until which every poll on the key waits (in the past when not paused)."""
        return self._paused_until

    def set_cap(self, cap: float | None) -> None:
        """Apply the connection's ``max_requests_per_second`` (None: no cap)."""
        self._cap = math.inf if cap is None else cap
        self._pace()

    def _pace(self) -> None:
        rate = self.rate
        self.interval = 0.0 if math.isinf(rate) else 1.0 / rate

    async def admit(self, deadline: float | None, what: str) -> None:
        """Wait for this poll's turn; call only while ``interval`` is set.

        :param deadline: Epoch seconds the poll's wait ends at (None or ``math.inf``: no end).
        :param what: What the poll does, for the error when its turn would come after ``deadline``.
        """
        while True:
            now = time.monotonic()
            turn = max(now, self._next, self._paused_until)
            if turn > now and deadline is not None and turn - now >= deadline - time.time():
                await asyncio.sleep(max(0.0, deadline - time.time()))
                raise CambRateLimitError(
                    f"The CAMB rate limit of this API key ({self.rate:.1f} requests per second in this process) "
                    f"held back {what} until the wait's deadline. Give the wait a longer timeout, poll less often, "
                    "or ask CAMB.AI for a higher limit.",
                    request_sent=False,
                )
            self._next = turn + self.interval
            self._saturated = turn > now
            if turn <= now:
                return
            epoch = self.epoch
            await asyncio.sleep(turn - now)
            if epoch == self.epoch:
                return

    def answered(self) -> None:
        """A poll on the key was answered (not refused): count it; raise the learnt rate while polls queue."""
        bucket = int(time.monotonic() * _BUCKETS)
        if bucket != self._bucket:
            self._roll(bucket)
        self._answered[bucket % _BUCKETS] += 1
        if self._saturated and self._learnt < math.inf:
            self._learnt += RAISE_SHARE + RAISE_FLOOR / self._learnt  # per answer: per second, share * rate + floor
            self._pace()

    def refused(self, retry_after: float | None, sent_in_epoch: int) -> None:
        """A poll sent in epoch ``sent_in_epoch`` got a 429: pause the key, cut the rate (once per epoch)."""
        if sent_in_epoch != self.epoch:
            return  # sent before the last change: that change already answered this overload
        now = time.monotonic()
        pause = DEFAULT_PAUSE if retry_after is None else min(retry_after, MAX_RETRY_AFTER)
        self._paused_until = max(self._paused_until, now + pause)
        self._roll(int(now * _BUCKETS))
        answered = sum(self._answered)  # polls CAMB answered in the last second
        base = min(self._learnt, float(answered)) if answered else min(self._learnt, FALLBACK_RATE / CUT)
        self._learnt = max(MIN_RATE, base * CUT)
        self._pace()
        self._next = self._paused_until  # turns given out before this are void: polls queue again from here
        self.epoch += 1

    def _roll(self, bucket: int) -> None:
        """Move the answer count to ``bucket`` (a 100 ms slot), zeroing the slots that passed."""
        for stale in range(max(self._bucket + 1, bucket - _BUCKETS + 1), bucket + 1):
            self._answered[stale % _BUCKETS] = 0
        self._bucket = max(self._bucket, bucket)


@dataclass
class KeyState:
    """A connection's settings and its key's limiter, shared by every hook on it in one loop."""

    loop: weakref.ref[asyncio.AbstractEventLoop]  # weak: the state must not keep a finished loop alive
    settings: CambSettings
    limiter: KeyLimiter
    expires: float  # monotonic time

    def fresh_in(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether this state belongs to ``loop`` and its settings have not expired."""
        return self.loop() is loop and time.monotonic() < self.expires


@dataclass
class _LoopState:
    keys: dict[str, KeyState] = field(default_factory=dict)
    reading: dict[str, asyncio.Task[KeyState]] = field(default_factory=dict)
    limiters: dict[tuple[str, str], KeyLimiter] = field(default_factory=dict)


_LOOPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()


async def key_state(
    conn_id: str, read_settings: Callable[[], Awaitable[CambSettings]], *, refused_key: str | None = None
) -> KeyState:
    """The running loop's state of connection ``conn_id``, reading its settings when missing or expired.

    With ``refused_key`` (a key CAMB just refused) the settings are read again unless they already hold
    another key: the waits refused alike share that one read. Concurrent callers share one read; a
    failed read (no such connection, bad settings) is raised to each of them and not kept.
    """
    loop = asyncio.get_running_loop()
    state = _LOOPS.get(loop)
    if state is None:
        state = _LOOPS[loop] = _LoopState()
    entry = state.keys.get(conn_id)
    if entry is not None and entry.fresh_in(loop) and entry.settings.api_key != refused_key:
        return entry
    reading = state.reading.get(conn_id)
    if reading is None:
        reading = loop.create_task(_read(state, weakref.ref(loop), conn_id, read_settings))
        state.reading[conn_id] = reading
        reading.add_done_callback(lambda done: _forget(state, conn_id, done))
    return await asyncio.shield(reading)  # a cancelled caller must not cancel the others' read


async def _read(
    state: _LoopState,
    loop: weakref.ref[asyncio.AbstractEventLoop],
    conn_id: str,
    read_settings: Callable[[], Awaitable[CambSettings]],
) -> KeyState:
    entry = state.keys.get(conn_id)
    try:
        settings = await read_settings()
    except Exception as error:
        if entry is None:
            raise
        # Waits already running keep their settings rather than all failing on one failed read.
        log.warning("Could not read connection %r again (%s); using its settings read before.", conn_id, error)
        entry.expires = time.monotonic() + SETTINGS_RETRY
        return entry
    key = (settings.base_url, hashlib.sha256(settings.api_key.encode()).hexdigest())
    limiter = state.limiters.get(key)
    if limiter is None:
        limiter = state.limiters[key] = KeyLimiter(settings.max_requests_per_second)
    else:
        limiter.set_cap(settings.max_requests_per_second)
    expires = time.monotonic() + SETTINGS_TTL
    if entry is None:
        entry = state.keys[conn_id] = KeyState(loop, settings, limiter, expires)
    else:  # in place: hooks holding the entry see the new settings
        entry.settings, entry.limiter, entry.expires = settings, limiter, expires
    return entry


def _forget(state: _LoopState, conn_id: str, done: asyncio.Task[KeyState]) -> None:
    if state.reading.get(conn_id) is done:
        del state.reading[conn_id]
    if not done.cancelled():
        done.exception()  # retrieved, so an error nobody awaited any more is not reported as lost
