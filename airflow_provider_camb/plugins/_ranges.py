"""HTTP byte ranges (RFC 9110, section 14) for the files the view streams, so players can seek.

One range per request: ``bytes=first-last``, ``bytes=first-`` or ``bytes=-suffix``. A header with
several ranges, another unit or bad syntax is ignored (the whole file is sent, as the RFC allows);
a range that starts past the end is not satisfiable (416).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")


class RangeNotSatisfiable(ValueError):
    """The range starts at or past the end of the file."""


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``first`` to ``last`` inclusive of a file of ``size`` bytes."""

    first: int
    last: int
    size: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.first}-{self.last}/{self.size}"


def requested_range(header: str | None, size: int) -> ByteRange | None:
    """The one range ``header`` asks for in a file of ``size`` bytes; ``None`` for the whole file."""
    if not header:
        return None
    found = _RANGE.fullmatch(header.strip())
    if found is None or found.group(1) == found.group(2) == "":
        return None
    first_text, last_text = found.groups()
    if first_text == "":  # the last N bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return ByteRange(max(0, size - suffix), size - 1, size)
    first = int(first_text)
    last = size - 1 if last_text == "" else int(last_text)
    if first >= size:
        raise RangeNotSatisfiable(header)
    if last < first:
        return None  # invalid: ignored
    return ByteRange(first, min(last, size - 1), size)
