"""The bookkeeping of one pass of a batch task: its items, their manifest entries, and how outcomes move them.

Pure bookkeeping, no requests: ``CambBatchOperator`` sends and saves, and calls these to move each
``_manifest.Entry`` from status to status (see ``_manifest`` for the statuses).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_camb import _manifest, events
from airflow_provider_camb._batch_items import Item
from airflow_provider_camb._manifest import CREATING, FAILED, NEW, PENDING, READY, SKIPPED, SUCCEEDED, Entry
from airflow_provider_camb.api import TaskStatus
from airflow_provider_camb.hooks._rate_limit import KeyLimiter

#: The failed items an error lists, at most.
MAX_LISTED = 20
_AGAIN = "Run the task again: it waits for the same CAMB task again and creates nothing new."


@dataclass
class BatchRun:
    """One pass of a batch task over its items: the checked items, their manifest entries, where it writes."""

    items: dict[str, Item]
    entries: dict[str, Entry]  # every entry of the manifest, items of earlier runs included
    folder: ObjectStoragePath
    manifest_name: str
    deadline: float
    creates_stopped: bool = False
    limiter: KeyLimiter = field(default_factory=KeyLimiter)

    @property
    def mine(self) -> list[Entry]:
        """The entries of this batch's items, in item order."""
        return sorted((self.entries[key] for key in self.items), key=lambda entry: entry.index)

    def having(self, *statuses: str) -> list[Entry]:
        return [entry for entry in self.mine if entry.status in statuses]

    def checkpoint(self) -> ObjectStoragePath:
        """Write the whole manifest (atomically); return its path."""
        return _manifest.write(self.folder, self.manifest_name, self.entries.values())


def reopen(entry: Entry, folder: ObjectStoragePath, recreate_failed: bool, log: Any) -> bool:
    """Where an entry stands at the start of a new try; True when the task state store must say (an earlier
    try may have sent its create: ``creating``, or ``uncertain``)."""
    replaced = TaskStatus.REPLACED_BY_A_RETRY
    if entry.status == SUCCEEDED and not all(_manifest.is_whole(folder, file) for file in entry.files):
        log.info("Item %r: its files are not whole in the destination; downloading them again.", entry.key)
        entry.update(status=READY, files=[])
    elif entry.status == FAILED and entry.camb_status in replaced and recreate_failed:
        log.info(
            "Item %r: CAMB task %s ended with %s; creating a new one.", entry.key, entry.camb_task_id, entry.camb_status
        )
        entry.update(
            status=NEW,
            replaced_task_ids=[*entry.replaced_task_ids, str(entry.camb_task_id)],
            camb_task_id=None,
            camb_status=None,
            error=None,
        )
    elif entry.status == FAILED and entry.camb_status == TaskStatus.SUCCESS:
        entry.update(status=READY, error=None)  # its download failed: download again
    elif (
        entry.status == FAILED
        and entry.camb_task_id is not None
        and entry.camb_status not in TaskStatus.REPLACED_BY_A_RETRY
    ):
        entry.update(status=PENDING, error=None)  # the wait ended (deadline, unreadable): wait again
    elif entry.status == SKIPPED:
        entry.update(status=NEW, error=None)
    elif entry.status == FAILED and entry.camb_task_id is None and not entry.uncertain:
        entry.update(status=NEW, error=None)  # refused by CAMB, or never sent: nothing was created
    return entry.status == CREATING or entry.uncertain


def apply_outcomes(run: BatchRun, finished: Iterable[object]) -> None:
    """Apply the outcomes of a batch wait (``CambBatchTrigger``'s typed events) to the pending entries; checkpoint."""
    by_task = {entry.camb_task_id: entry for entry in run.having(PENDING)}
    for payload in finished:
        event = events.decode_event(payload)
        entry = by_task.get(event["task_id"])
        if entry is None:
            continue
        if event["outcome"] == events.FINISHED:
            status = events.status_of(event)
            if status.status == TaskStatus.SUCCESS:
                entry.update(status=READY, camb_status=status.status, run_id=status.run_id)
            else:
                entry.fail(status.reason, status.advice, camb_status=status.status)
                run.creates_stopped = run.creates_stopped or status.status == TaskStatus.PAYMENT_REQUIRED
        elif event["outcome"] == events.DEADLINE:
            entry.fail(event["message"], "Raise the batch's timeout if its tasks take longer. " + _AGAIN)
        else:
            entry.fail(event["message"], _AGAIN)
    run.checkpoint()


#: Why an item was not created after a PAYMENT_REQUIRED, and what to do.
NOT_PAID = (
    "Not created: CAMB answered PAYMENT_REQUIRED to an earlier create of this batch.",
    "Add credits to the CAMB.AI account, then run the task again.",
)
#: Why an item was not created before the batch's timeout, and what to do.
OUT_OF_TIME = (
    "Not created: the batch's timeout passed first.",
    "Raise the batch's timeout, or run the task again: it goes on where this try stopped.",
)


def close_the_rest(run: BatchRun, status: str, reason: str, advice: str) -> None:
    """The items never created (creates stopped, or time ran out) end with ``status`` and that reason."""
    for entry in run.having(NEW):
        entry.update(status=status, error={"reason": reason, "advice": advice})


def failure_summary(failed: list[Entry], total: int, manifest: ObjectStoragePath, allowed: int) -> str:
    """The error of a batch with failed items: the first 20 with their task, reason and advice, then a count."""
    lines = [
        f"- {entry.key!r} (CAMB task {entry.camb_task_id or 'none'}): {(entry.error or {}).get('reason')} "
        f"{(entry.error or {}).get('advice')}"
        for entry in failed[:MAX_LISTED]
    ]
    more = [f"... and {len(failed) - MAX_LISTED} more."] if len(failed) > MAX_LISTED else []
    return "\n".join(
        [
            f"{len(failed)} of {total} items of the CAMB batch failed (max_failures={allowed}); every other item is "
            f"done and the manifest {manifest} lists each item:",
            *lines,
            *more,
        ]
    )
