"""The stand-in's per-key rate limit: N requests per second per API key, then 429 with ``Retry-After``.

Like many APIs, it counts each key's requests in fixed one-second windows; a request beyond the
window's allowance is refused with HTTP 429 and ``Retry-After`` set to the whole seconds until the
window ends (at least 1). Refused requests do not count. Only the stand-in's event loop calls ``take``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field


@dataclass
class KeyRateLimit:
    """At most ``per_second`` requests per key in each one-second window."""

    per_second: int
    refused: int = 0  # requests answered 429 so far
    _windows: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (window, requests in it)

    def __post_init__(self) -> None:
        if isinstance(self.per_second, bool) or not isinstance(self.per_second, int) or self.per_second < 1:
            raise ValueError(f"per_second must be a whole number >= 1, not {self.per_second!r}")

    def take(self, key: str, now: float | None = None) -> float | None:
        """Count a request of ``key``; None when allowed, else the seconds to put in ``Retry-After``."""
        now = time.time() if now is None else now
        window = math.floor(now)
        current, used = self._windows.get(key, (window, 0))
        if current != window:
            used = 0
        if used >= self.per_second:
            self.refused += 1
            return float(max(1, math.ceil(window + 1 - now)))
        self._windows[key] = (window, used + 1)
        return None
