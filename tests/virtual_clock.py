"""An event loop on a virtual clock: ``asyncio.sleep`` takes no real time, and time moves only when it sleeps.

For the rate limiter's rules, which are about when each poll may go: with ``VirtualClock`` the turns it
gives out are exact numbers, whatever the machine's load. The loop's clock (``loop.time()``) is the
virtual one; when nothing is ready, instead of waiting for the next timer the loop jumps to it.
``VirtualClock.monotonic`` and ``.time`` stand in for the ``time`` functions of the module under test::

    clock = VirtualClock()
    monkeypatch.setattr(_rate_limit, "time", clock)   # the module's time.monotonic() and time.time()
    clock.run(scenario())                            # its asyncio.sleep() moves the same clock
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: Where the virtual epoch clock (``time()``) stands when the monotonic clock reads 0.
EPOCH = 1_800_000_000.0


class VirtualClock:
    """The clock of one virtual-time event loop: ``monotonic()`` seconds since it was made, ``time()`` an epoch."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return EPOCH + self.now

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` to its end on a fresh loop whose timers fire on this clock."""
        with asyncio.Runner(loop_factory=lambda: _VirtualLoop(self)) as runner:
            return runner.run(coroutine)


class _JumpingSelector(selectors.DefaultSelector):
    """Waits for nothing: what is ready is returned at once; otherwise the clock jumps to the next timer."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or (timeout is not None and timeout <= 0):
            return ready
        if timeout is None:
            raise RuntimeError("Nothing is scheduled and nothing is ready: the coroutine would wait for ever.")
        self._clock.now += timeout
        return []


class _VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(selector=_JumpingSelector(clock))
        self._clock = clock

    def time(self) -> float:
        return self._clock.now
