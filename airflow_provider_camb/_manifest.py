"""The manifest of a batch: one JSON object per item, the batch's memory and its output.

A batch task writes ``<destination>/<manifest name>`` (JSON Lines) whole at every checkpoint, through
``_storage.write_atomically``, so a reader sees the last checkpoint or the one before, never half of
one. A retry, a rerun or a resumed task on another machine reads it back to know, per item key, which
CAMB task it started, where that task stands and which files it wrote. Files count as written only
when they are whole: size and sha256 as recorded.

Statuses (``Entry.status``), ours and apart from CAMB's (``Entry.camb_status``):

- ``new``: no CAMB task yet;
- ``creating``: about to be created in the current block (a crash here leaves the state store, on
  Airflow 3.3+, as the only witness of whether it was);
- ``pending``: its CAMB task runs;
- ``ready``: its CAMB task succeeded, its files are not all saved yet;
- ``succeeded``: its files are whole in the destination;
- ``failed``: its CAMB task ended in ERROR, TIMEOUT or PAYMENT_REQUIRED, or its create or download
  failed for good; ``error`` says why and what to do;
- ``skipped``: never created, because creates stopped (the account ran out of credits).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import IO, Any

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_camb._storage import write_atomically
from airflow_provider_camb.exceptions import CambInputError

NEW = "new"
CREATING = "creating"
PENDING = "pending"
READY = "ready"
SUCCEEDED = "succeeded"
FAILED = "failed"
SKIPPED = "skipped"
STATUSES = (NEW, CREATING, PENDING, READY, SUCCEEDED, FAILED, SKIPPED)
#: Statuses after which nothing more happens to an item in this run.
FINAL = frozenset({SUCCEEDED, FAILED, SKIPPED})

_HASH_CHUNK = 1024 * 1024


def now() -> str:
    """The manifest's timestamps: UTC, ISO 8601, to the millisecond."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class Entry:
    """What the batch knows about one item.

    :param key: The item's key, unique in the batch.
    :param index: The item's position in the input (0-based).
    :param status: One of ``STATUSES``.
    :param camb_task_id: The CAMB task started for the item (None until created).
    :param camb_status: CAMB's last status of that task (``PENDING``, ``SUCCESS``, ``ERROR``, ...).
    :param run_id: The CAMB run of a successful task.
    :param files: ``{"path", "bytes", "sha256"}`` of each file saved for the item.
    :param error: ``{"reason", "advice"}`` of a failed item.
    :param created_at: When its CAMB task was created.
    :param finished_at: When the item reached a final status.
    :param updated_at: When the entry last changed.
    :param replaced_task_ids: Earlier CAMB tasks of the item that ended in ERROR or TIMEOUT and were replaced.
    :param uncertain: Its create was sent and no usable reply came back: a CAMB task may exist, id unknown.
    """

    key: str
    index: int
    status: str = NEW
    camb_task_id: str | None = None
    camb_status: str | None = None
    run_id: int | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, str] | None = None
    created_at: str | None = None
    finished_at: str | None = None
    updated_at: str = field(default_factory=now)
    replaced_task_ids: list[str] = field(default_factory=list)
    uncertain: bool = False

    def update(self, **changes: Any) -> None:
        """Change fields and stamp ``updated_at`` (and ``finished_at`` on reaching a final status)."""
        for name, value in changes.items():
            setattr(self, name, value)
        self.updated_at = now()
        if changes.get("status") in FINAL:
            self.finished_at = self.updated_at

    def fail(self, reason: str, advice: str, **changes: Any) -> None:
        self.update(status=FAILED, error={"reason": reason, "advice": advice}, **changes)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))


_ENTRY_FIELDS = frozenset(f.name for f in fields(Entry))


def _entry(line: str, number: int, where: str) -> Entry:
    try:
        raw = json.loads(line)
    except ValueError:
        raw = None
    if not isinstance(raw, dict) or not isinstance(raw.get("key"), str) or not isinstance(raw.get("index"), int):
        raise CambInputError(
            f"Line {number} of the manifest {where} is not a manifest entry. The manifest is written by the batch "
            "itself: remove the damaged file to start the batch afresh (items already created would be created "
            "again), or restore it."
        )
    known = {name: value for name, value in raw.items() if name in _ENTRY_FIELDS}  # newer fields: ignored
    entry = Entry(**known)
    if entry.status not in STATUSES:
        entry.status = NEW if entry.camb_task_id is None else PENDING
    return entry


def read(path: ObjectStoragePath) -> dict[str, Entry] | None:
    """The entries of the manifest at ``path`` by key; None when there is none yet."""
    try:
        with path.open("rb") as file:  # type: ignore[no-untyped-call]
            text = file.read().decode("utf-8")
    except FileNotFoundError:
        return None
    entries: dict[str, Entry] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            entry = _entry(line, number, str(path))
            entries[entry.key] = entry
    return entries


def write(folder: ObjectStoragePath, name: str, entries: Iterable[Entry]) -> ObjectStoragePath:
    """Write the whole manifest atomically (temporary name, then moved into place); return its path."""
    data = "".join(entry.to_json() + "\n" for entry in sorted(entries, key=lambda e: e.index)).encode()

    def fill(file: IO[bytes]) -> None:
        file.write(data)

    final, _ = write_atomically(folder, name, fill, lambda _: name)
    return final


def listed(path: ObjectStoragePath, size: int, sha256: str) -> dict[str, Any]:
    """A file as the manifest lists it."""
    return {"path": str(path), "bytes": size, "sha256": sha256}


def is_whole(folder: ObjectStoragePath, file: Mapping[str, Any]) -> bool:
    """Whether a listed file is in ``folder`` with the recorded size and sha256 (size first: it is cheap)."""
    name = PurePosixPath(str(file.get("path", ""))).name
    if not name:
        return False
    path = folder / name
    try:
        if path.stat().st_size != file.get("bytes"):
            return False
        digest = hashlib.sha256()
        with path.open("rb") as source:  # type: ignore[no-untyped-call]
            while chunk := source.read(_HASH_CHUNK):
                digest.update(chunk)
    except (FileNotFoundError, OSError):
        return False
    return digest.hexdigest() == file.get("sha256")


def counts(entries: Iterable[Entry]) -> dict[str, int]:
    """How many entries are in each status (every status present, zeros included)."""
    found = dict.fromkeys(STATUSES, 0)
    for entry in entries:
        found[entry.status] += 1
    return found
