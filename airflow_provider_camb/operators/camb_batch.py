"""CambBatchOperator: the one batch core under every batch operator (a catalogue of CAMB tasks in one Airflow task).

One Airflow task creates a CAMB task per item, waits for all of them in one trigger, downloads every
result, and writes a manifest (``_manifest``) to the destination at every checkpoint. Each kind's batch
operator (``operators/batch.py``) is a small subclass: its item fields, its kind (whose module under ``kinds``
builds and checks each item's request) and how it saves one item's result.

The steps, repeated until no item is pending:

1. **download** the items whose CAMB task succeeded: results in bulk where CAMB has a bulk endpoint,
   files concurrently (``max_concurrent_downloads``), each written whole (``_storage.write_atomically``);
2. **create** CAMB tasks for new items, one request at a time, paced through the key's rate limiter,
   until ``max_in_flight`` are pending; a PAYMENT_REQUIRED stops new creates (those in flight go on);
3. **wait** for the pending ones, until all are done, enough are done to free slots, or the deadline:
   with the same coroutine on the worker (``deferrable=False``) or in one ``CambBatchTrigger``. A
   deferrable batch first waits up to ``resume_margin`` on the worker and defers only what is still
   pending then: deferred, a shorter wait would hold its event that long anyway (apache/airflow#72716)
   and cost a worker start to resume.

Never paying twice: before each block of creates the manifest marks its items ``creating``; each create
is kept in the task state store (``_task_memory``, Airflow 3.3+) from before it is sent until its id is
known. A new try reads the manifest, asks the store about the items marked ``creating``, and never
creates again an item whose CAMB task is pending or succeeded; only items that ended in ERROR, TIMEOUT or
PAYMENT_REQUIRED get new tasks (unless ``recreate_failed=False``). Partial failures are never green.
An item that uploads a media file (``operators/_uploading_batch.py``) sends it inside its one create
request, so that window stays one request; creates go one at a time and each opens its item's file only
while it is sent, so one file at most is read into memory at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_camb import _manifest
from airflow_provider_camb._batch_items import Item, check_items, read_items
from airflow_provider_camb._batch_run import (
    NOT_PAID,
    OUT_OF_TIME,
    BatchRun,
    apply_outcomes,
    close_the_rest,
    failure_summary,
    reopen,
)
from airflow_provider_camb._lineage import attach_asset_extras, stored_file
from airflow_provider_camb._manifest import CREATING, FAILED, NEW, PENDING, READY, SKIPPED, SUCCEEDED, Entry
from airflow_provider_camb._media_file import MediaFile, upload_parts
from airflow_provider_camb._storage import destination_folder
from airflow_provider_camb._task_memory import CambCreate, TaskMemory, item_key, look_for, starting
from airflow_provider_camb.api import BULK_RESULTS_MAX, ApiRequest, TaskStatus, whole_number
from airflow_provider_camb.exceptions import (
    CambApiError,
    CambBatchFailedError,
    CambError,
    CambInputError,
    CambPaymentRequiredError,
    CambRateLimitError,
    CambUncertainCreateError,
    CambValidationError,
)
from airflow_provider_camb.hooks._rate_limit import KeyLimiter
from airflow_provider_camb.operators._base import CambCreatingOperator
from airflow_provider_camb.operators.camb_media_task import media_detail
from airflow_provider_camb.triggers.camb_batch import CambBatchTrigger, wait_for_batch

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: Creates between two checkpoints of the manifest.
CREATE_BLOCK = 100
#: Files named in asset event extras and lineage, at most (the manifest lists them all).
MAX_EXTRA_FILES = 1000
_DOWNLOAD_AGAIN = "Run the task again: it downloads the files again and creates no new CAMB task."


class CambBatchOperator(CambCreatingOperator):
    """Create, wait for and download many CAMB tasks of one kind in one Airflow task (see the module docstring).

    Returns ``{"manifest": <path or URI>, "succeeded": n, "failed": n, "skipped": n}``. The task finishes
    every item it can, writes the manifest, then fails when more than ``max_failures`` items failed, listing
    the first 20 with their CAMB task, reason and advice; a PAYMENT_REQUIRED fails it without retries.

    :param items: A list of dicts, one per item: the fields of the kind's single create operator, plus an
        optional ``key`` (unique; it names the item's files; default: a hash of the item's inputs). Templated,
        so an upstream XCom works.
    :param items_uri: Instead of ``items``: a JSON Lines (``.jsonl``) or CSV (``.csv``) file, local or in
        object storage (templated).
    :param items_conn_id: The Airflow connection that reads ``items_uri`` in object storage.
    :param destination: Folder or object storage URI for the files and the manifest (templated).
    :param destination_conn_id: The Airflow connection that writes to ``destination``.
    :param manifest_name: The manifest's file name in ``destination`` (templated; default
        ``camb_batch_<task_id>.manifest.jsonl``).
    :param max_in_flight: CAMB tasks pending at once, at most (default 100).
    :param poll_interval: Seconds between status polls of each pending task.
    :param timeout: Longest wait of one try, in seconds or a ``timedelta`` (default 24 hours).
    :param deferrable: Wait in the triggerer (default: ``[operators] default_deferrable``); else on the worker.
    :param resume_margin: Deferred, each wait resumes the task no sooner than this many seconds after it
        deferred (apache/airflow#72716; default 30 s); a deferrable batch first waits that long on the
        worker, and defers only if its tasks are not done (or enough to refill the slots) by then.
    :param max_failures: Items that may fail while the task still succeeds (default 0).
    :param recreate_failed: On a new try, give items that ended in ERROR, TIMEOUT or PAYMENT_REQUIRED a new
        CAMB task (default True); False keeps them failed.
    :param retry_uncertain_create: Create an item again when CAMB may have created a task for it whose id is
        unknown (default False: such an item fails, and is never paid for twice).
    :param max_concurrent_downloads: Files downloaded at once (default 8).
    :param max_bytes: Refuse any downloaded file larger than this many bytes (its item fails, nothing written);
        None (the default): no limit.
    :param camb_conn_id: The Airflow connection of type ``camb``.
    :param project_name: Optional CAMB project name of every item (templated).
    :param project_description: Optional CAMB project description (templated).
    :param folder_id: Optional CAMB folder id (templated).
    """

    #: The fields an item may have besides ``key``: its kind's single create operator's.
    item_fields: ClassVar[tuple[str, ...]]
    #: Which of them the operator also takes, as defaults for every item.
    default_fields: ClassVar[tuple[str, ...]] = ()
    template_fields: Sequence[str] = (
        "items",
        "items_uri",
        "destination",
        "manifest_name",
        *CambCreatingOperator.project_fields,
    )
    ui_color = "#e8dff5"

    def __init__(
        self,
        *,
        destination: str,
        items: list[dict[str, Any]] | str | None = None,
        items_uri: str | None = None,
        items_conn_id: str | None = None,
        destination_conn_id: str | None = None,
        manifest_name: str | None = None,
        max_in_flight: int = 100,
        max_failures: int = 0,
        recreate_failed: bool = True,
        max_concurrent_downloads: int = 8,
        max_bytes: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, value, low, high in (
            ("max_in_flight", max_in_flight, 1, 5000),
            ("max_failures", max_failures, 0, None),
            ("max_concurrent_downloads", max_concurrent_downloads, 1, 64),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
                raise CambInputError(f"{name} must be a whole number from {low}{f' to {high}' if high else ''}.")
        self.items = items
        self.items_uri = items_uri
        self.items_conn_id = items_conn_id
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.manifest_name = manifest_name
        self.max_in_flight = max_in_flight
        self.max_failures = max_failures
        self.recreate_failed = recreate_failed
        self.max_concurrent_downloads = max_concurrent_downloads
        self.max_bytes = whole_number("max_bytes", max_bytes, optional=True)

    # --- what each kind writes -------------------------------------------------------------

    def item_request(self, fields: Mapping[str, Any]) -> ApiRequest:
        """The create request of one item (its fields over the defaults), built and checked by its kind."""
        return self.kind.create_request(fields)

    def item_media(self, fields: Mapping[str, Any], *, look: bool) -> MediaFile | None:
        """The checked file an item's create uploads (None: it uploads none; ``look``: check that it exists)."""
        return None

    def fetch_results(self, run_ids: list[int]) -> dict[int, Any]:
        """The results of up to 100 successful runs by run id (in bulk where CAMB can)."""
        raise NotImplementedError

    def save_item(self, folder: ObjectStoragePath, entry: Entry, result: Any) -> list[dict[str, Any]]:
        """Write one item's files into ``folder`` (each whole or not at all); list them for the manifest."""
        raise NotImplementedError

    # --- the flow ------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        run = self._prepare(deadline=time.time() + self.timeout, look=True)
        self._reconcile(context, run)
        return self._advance(context, run)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the batch wait fired: apply the outcomes, then go on where the batch stood."""
        deadline = event.get("deadline")
        run = self._prepare(
            deadline=time.time() + self.timeout if deadline is None else float(deadline),
            creates_stopped=bool(event.get("creates_stopped")),
            look=False,  # this try looked at every item's file before its first request
        )
        apply_outcomes(run, event.get("finished", []))
        return self._advance(context, run)

    def _prepare(self, *, deadline: float, look: bool, creates_stopped: bool = False) -> BatchRun:
        """Read and check every item (before any request; ``look``: their files too), then read the manifest."""
        defaults = {name: getattr(self, name) for name in (*self.default_fields, *self.project_fields)}
        checked = check_items(
            read_items(self.items, self.items_uri, self.items_conn_id),
            kind=self.kind.name,
            fields=(*self.item_fields, *self.project_fields),
            defaults={name: value for name, value in defaults.items() if value is not None},
            build=self.item_request,
            media=lambda fields: self.item_media(fields, look=look),
        )
        folder = destination_folder(self.destination, conn_id=self.destination_conn_id)
        name = self.manifest_name or f"camb_batch_{self.task_id}.manifest.jsonl"
        entries = _manifest.read(folder / name) or {}
        for item in checked:
            entry = entries.setdefault(item.key, Entry(item.key, item.index))
            entry.index = item.index
        items = {item.key: item for item in checked}
        return BatchRun(items, entries, folder, name, deadline, creates_stopped, KeyLimiter())

    def _advance(self, context: Context, run: BatchRun) -> dict[str, Any]:
        while True:
            self._download(run)
            if not run.creates_stopped and time.time() < run.deadline:
                self._create(context, run)
            if not run.having(PENDING):
                return self._finish(context, run)
            if self.deferrable and self._ended_here_first(run):
                continue
            trigger = self._wait_for_pending(run)
            if self.deferrable:
                self.log.info(
                    "Deferring: the triggerer waits for the %d pending CAMB tasks.", len(trigger.camb_task_ids)
                )
                self.defer(trigger=trigger, method_name="execute_complete", timeout=self.execution_timeout)
            apply_outcomes(run, asyncio.run(wait_for_batch(trigger, self.log)))

    def _wait_for_pending(self, run: BatchRun) -> CambBatchTrigger:
        """The wait, from now, for every pending item: until all, or enough to refill the slots, are done."""
        more = bool(run.having(NEW)) and not run.creates_stopped
        return CambBatchTrigger(
            kind=self.kind.name,
            camb_task_ids=[str(entry.camb_task_id) for entry in run.having(PENDING)],
            camb_conn_id=self.camb_conn_id,
            poll_interval=self.poll_interval,
            deadline=run.deadline,
            enough=max(1, self.max_in_flight // 4) if more else 0,
            total=len(run.items),
            done=len(run.having(SUCCEEDED, FAILED, SKIPPED)),
            creates_stopped=run.creates_stopped,
            deferred_at=time.time(),
            resume_margin=self.resume_margin,
        )

    def _ended_here_first(self, run: BatchRun) -> bool:
        """Before deferring, wait up to ``resume_margin`` on the worker: deferred, a wait that ends sooner would
        hold its event that long anyway (apache/airflow#72716) and cost a worker start to resume.

        True when the wait fired here (all, or enough to refill the slots, are done: go on without deferring);
        False when ``resume_margin`` passed first: what is still pending is then deferred.
        """
        if self.resume_margin <= 0:
            return False
        wait = self._wait_for_pending(run)
        finished = asyncio.run(wait_for_batch(wait, self.log, until=time.time() + self.resume_margin))
        apply_outcomes(run, finished)
        return len(finished) >= wait.fires_after

    # --- a new try: what the manifest and the store say ------------------------------------

    def _reconcile(self, context: Context, run: BatchRun) -> None:
        """A new try: bring every item to where it stands (files whole, tasks to wait for, items to create)."""
        memory = TaskMemory.of(context, self)
        for entry in run.mine:
            if reopen(entry, run.folder, self.recreate_failed, self.log):
                self._recall(memory, run.items[entry.key], entry)
        run.checkpoint()

    def _recall(self, memory: TaskMemory, item: Item, entry: Entry) -> None:
        """An item whose create may have been sent by an earlier try: its task, or new, or failed as uncertain."""
        try:
            earlier = memory.recall(self._create_of(item))
        except CambUncertainCreateError as error:
            entry.fail(str(error), "Look for the task in CAMB.AI; see the reason.", uncertain=True)
            return
        if earlier is None:
            entry.update(status=NEW, error=None, uncertain=False)
        else:
            self.log.info(
                "Item %r reattaches to CAMB task %s, created by try %d.", entry.key, earlier.camb_id, earlier.try_number
            )
            entry.update(
                status=PENDING,
                camb_task_id=str(earlier.camb_id),
                camb_status=TaskStatus.PENDING,
                error=None,
                uncertain=False,
            )

    def _create_of(self, item: Item) -> CambCreate:
        """The item's create as the task memory keeps it, with how to recognise its task in CAMB.AI."""
        body = item.request.json or item.request.form or {}
        what = f"CAMB {self.kind.label} task of item {item.key!r}"
        detail = self.item_detail(body) if item.media is None else media_detail(item.media.name, None)
        return CambCreate(item_key(item.key), what, look_for(body.get("project_name"), detail))

    def item_detail(self, body: Mapping[str, Any]) -> str | None:
        """How a person recognises an item's task in CAMB.AI besides its project (from its create's body)."""
        return starting(self.described_by, body.get(self.described_by))

    # --- the steps ---------------------------------------------------------------------

    def _create(self, context: Context, run: BatchRun) -> None:
        """Create tasks for new items, one at a time, until ``max_in_flight`` are pending; checkpoint per block."""
        memory = TaskMemory.of(context, self)
        while not run.creates_stopped:
            block = run.having(NEW)[: min(self.max_in_flight - len(run.having(PENDING)), CREATE_BLOCK)]
            if not block:
                return
            for entry in block:
                entry.update(status=CREATING)
            run.checkpoint()  # a crash from here on leaves these recognisable: their store records decide
            try:
                for entry in block:
                    self._create_one(run, memory, entry)
                    if run.creates_stopped:
                        break
            finally:
                for entry in block:
                    if entry.status == CREATING:  # not sent: a payment stop, or an error that ends the try
                        entry.update(status=NEW)
                run.checkpoint()
            self.log.info("Created %d CAMB tasks; %d pending.", len(block), len(run.having(PENDING)))

    def _create_one(self, run: BatchRun, memory: TaskMemory, entry: Entry) -> None:
        """Create the item's task; its media file (if any) is open, and read, only while this create is sent."""
        item = run.items[entry.key]
        with ExitStack() as uploading:
            try:
                parts = uploading.enter_context(upload_parts(self.kind, item.media))
            except CambInputError as error:  # the file went away since it was checked: nothing was sent
                entry.fail(f"Item {entry.key!r} ({item.where}): {error}", "Restore the file, then run the task again.")
                return
            self._send_create(run, memory, entry, parts)

    def _send_create(self, run: BatchRun, memory: TaskMemory, entry: Entry, parts: dict[str, Any]) -> None:
        item = run.items[entry.key]
        what = f"creating the CAMB {self.kind.label} task of item {entry.key!r}"
        while True:
            if run.limiter.interval:  # after a 429: every create waits its turn, outside any record of a create
                asyncio.run(run.limiter.admit(None, what))
            epoch = run.limiter.epoch
            try:
                task_id = memory.start(
                    self._create_of(item),
                    lambda: self.hook.create_task(item.request, self.kind, wait_out_rate_limits=False, **parts),
                )
            except CambRateLimitError as error:
                run.limiter.refused(error.retry_after, epoch)
                continue
            except CambPaymentRequiredError as error:
                self.log.warning("%s Stopping new creates; the tasks in flight are still waited for.", error)
                run.creates_stopped = True
                return
            except CambUncertainCreateError as error:
                entry.fail(str(error), "Look for the task in CAMB.AI; see the reason.", uncertain=True)
                return
            except (CambValidationError, CambApiError) as error:  # this item's request: the others may pass
                entry.fail(f"CAMB refused the create of item {entry.key!r} ({item.where}): {error}", "Fix the item.")
                return
            run.limiter.answered()
            entry.update(
                status=PENDING, camb_task_id=task_id, camb_status=TaskStatus.PENDING, created_at=_manifest.now()
            )
            return

    def _download(self, run: BatchRun) -> None:
        """Save the results of every item whose task succeeded: in blocks of 100, a checkpoint after each."""
        ready = run.having(READY)
        if not ready:
            return
        self.hook.settings  # noqa: B018  # read once, before the threads share the hook
        with ThreadPoolExecutor(self.max_concurrent_downloads, thread_name_prefix="camb-batch") as pool:
            for start in range(0, len(ready), BULK_RESULTS_MAX):
                block = ready[start : start + BULK_RESULTS_MAX]
                results = self._results(block)
                saving = {
                    pool.submit(self.save_item, run.folder, entry, results[int(entry.run_id or 0)]): entry
                    for entry in block
                    if int(entry.run_id or 0) in results
                }
                for done in as_completed(saving):
                    entry = saving[done]
                    try:
                        entry.update(status=SUCCEEDED, files=done.result(), error=None)
                    except CambError as error:
                        entry.fail(
                            f"Saving the files of item {entry.key!r} (CAMB run {entry.run_id}) failed: {error}",
                            _DOWNLOAD_AGAIN,
                        )
                run.checkpoint()
                self.log.info("Saved the files of %d items to %s.", len(block), run.folder)

    def _results(self, block: list[Entry]) -> dict[int, Any]:
        """The results of a block of runs; when CAMB refuses the block, each run is asked alone (and fails alone)."""
        try:
            return self.fetch_results([int(entry.run_id or 0) for entry in block])
        except CambError as error:
            if error.transient or len(block) == 1:
                raise
        results: dict[int, Any] = {}
        for entry in block:
            try:
                results.update(self.fetch_results([int(entry.run_id or 0)]))
            except CambError as error:
                if error.transient:
                    raise
                entry.fail(
                    f"Fetching the result of CAMB run {entry.run_id} of item {entry.key!r} failed: {error}",
                    "Run the task again: it downloads the files again and creates no new CAMB task.",
                )
        return results

    def _finish(self, context: Context, run: BatchRun) -> dict[str, Any]:
        if run.creates_stopped:
            close_the_rest(run, SKIPPED, *NOT_PAID)
        elif time.time() >= run.deadline:
            close_the_rest(run, FAILED, *OUT_OF_TIME)
        manifest = run.checkpoint()
        counts = _manifest.counts(run.mine)
        result = {
            "manifest": str(manifest),
            "succeeded": counts[SUCCEEDED],
            "failed": counts[FAILED],
            "skipped": counts[SKIPPED],
        }
        self.log.info("CAMB batch of %d items done: %s", len(run.items), result)
        self._record(context, run, manifest)
        failed = run.having(FAILED, SKIPPED)
        if counts[SKIPPED]:
            raise CambPaymentRequiredError(failure_summary(failed, len(run.items), manifest, self.max_failures))
        if len(failed) > self.max_failures:
            raise CambBatchFailedError(failure_summary(failed, len(run.items), manifest, self.max_failures))
        return result

    def _record(self, context: Context, run: BatchRun, manifest: ObjectStoragePath) -> None:
        """Lineage and asset event extras, as the single result operators report them (files capped)."""
        files = [file for entry in run.having(SUCCEEDED) for file in entry.files]
        shown = files[:MAX_EXTRA_FILES]
        self.record_lineage(outputs=[stored_file(str(manifest)), *(stored_file(f["path"], f["bytes"]) for f in shown)])
        attach_asset_extras(
            getattr(self, "outlets", ()),
            context,
            {
                "camb_kind": self.kind.name,
                "manifest": str(manifest),
                **{
                    key: value
                    for key, value in _manifest.counts(run.mine).items()
                    if key in (SUCCEEDED, FAILED, SKIPPED)
                },
                "files": [{"path": f["path"], "sha256": f["sha256"], "bytes": f["bytes"]} for f in shown],
                "files_listed": len(shown),
                "files_total": len(files),
            },
        )
