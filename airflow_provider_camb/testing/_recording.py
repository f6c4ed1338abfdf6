"""What the stand-in keeps of the requests it answers: counts per endpoint, a record, and an optional JSON-lines log.

Counts are always kept; the record only with ``record_requests`` (a long run under load may not want it).
A request takes its place in the record when it arrives and is filled in before its reply is sent, so a
client that has its reply always finds its request recorded, in arrival order.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from dataclasses import dataclass
from typing import IO, Any

from airflow_provider_camb.testing._endpoints import Call, ServerName

_Slot = tuple[list["RecordedRequest | None"], int]


@dataclass(frozen=True)
class RecordedRequest:
    """One request received by the stand-in, and the status it answered (0: dropped without a reply)."""

    server: ServerName
    endpoint: str
    method: str
    path: str
    path_id: str | None
    query: dict[str, str]
    headers: dict[str, str]
    json: Any | None
    status: int
    time: float
    kind: str | None = None  # the CAMB task kind of a create, status or result request


class Recorder:
    """The counts, record and log of one stand-in's requests (control requests are never seen here); thread-safe."""

    def __init__(self, *, record: bool, log_path: str | os.PathLike[str] | None) -> None:
        self._record = record
        self._log_path = log_path
        self._log_file: IO[str] | None = None
        self._lock = threading.Lock()
        self._records: list[RecordedRequest | None] = []
        self._counts: Counter[str] = Counter()

    def open_log(self) -> None:
        if self._log_path is not None:
            self._log_file = open(self._log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    def close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def arrive(self, call: Call) -> _Slot | None:
        """Count the request, log it, and keep its place in the record (filled in by ``done``)."""
        if self._log_file is not None:
            line = {
                "time": call.received,
                "server": call.server,
                "endpoint": call.endpoint,
                "method": call.request.method,
                "path": call.path,
                "path_id": call.path_id,
                "kind": call.kind,
                "query": call.query,
                "headers": call.headers,
            }
            self._log_file.write(json.dumps(line) + "\n")
        with self._lock:
            self._counts[call.endpoint] += 1
            if not self._record:
                return None
            self._records.append(None)
            return self._records, len(self._records) - 1

    def done(self, slot: _Slot | None, call: Call, status: int) -> None:
        """Record the answered request in its place (a slot from before ``clear`` fills the old record)."""
        if slot is None:
            return
        records, index = slot
        recorded = RecordedRequest(
            server=call.server,
            endpoint=call.endpoint,
            method=call.request.method,
            path=call.path,
            path_id=call.path_id,
            query=call.query,
            headers=call.headers,
            json=call.json,
            status=status,
            time=call.received,
            kind=call.kind,
        )
        with self._lock:
            records[index] = recorded

    def requests(self, endpoint: str | None = None, kind: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [
                r for r in self._records if r is not None and endpoint in (None, r.endpoint) and kind in (None, r.kind)
            ]

    def counts(self) -> dict[str, int]:
        """How many requests arrived, by endpoint."""
        with self._lock:
            return dict(self._counts)

    def clear(self) -> None:
        with self._lock:
            self._records = []
            self._counts.clear()
