"""Sync runs of sources: visit every item once, hand what changed to the pipeline.

A run starts (API, schedule or creation: :func:`start_sync`) with one ``sync`` task that
lists the connector's roots. Each item is then one task (:func:`run_task`): the connector
visits it and the run records what came of it on the item's row
(:mod:`shared.store.sources`). New or changed content goes where uploads go and through
:func:`shared.pipeline.ingest.register_object` (a new document on first sight, a new
version when the content changed, nothing when it did not); an item that is gone takes
its document with it; children are claimed for the run by a conditional upsert (exactly
one task per key per run, up to the run's item cap) and enqueued under deterministic
names, so a redelivered task changes nothing twice.

The run ends when no item is pending: one caller moves it to ``finishing`` (a
conditional transition), the source's items the run did not reach are gone and their
documents deleted (unless the run saw only part of the source: it hit its cap, or a root
failed), and the counts, last error and status are written. A sync asked for while one
runs joins it (the running run is returned). A task lost with its queue is found by the
sweep (:func:`sweep_sources`): a run with no progress for ``stall_after_s`` has its
pending tasks enqueued again, and after ``max_sweeps`` such sweeps they fail and a task
ends the run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.errors import ConflictError, NotFoundError, PermanentError
from shared.models import SyncTask
from shared.paths import upload_object_name
from shared.pipeline.ingest import register_object
from shared.pipeline.removal import REMOVAL_ROUNDS, delete_document
from shared.runtime import Runtime
from shared.sources.connector import Connector, FetchedDocument, ItemRef, Outcome, Revision, Visit
from shared.sources.registry import max_items, source_type
from shared.storage import md5_checksum
from shared.store import documents as document_store
from shared.store import sources as store
from shared.store.sources import ItemResult, NewItem, Source, SourceItem, SourceRun

log = logging.getLogger(__name__)

# Hex digits of SHA-256 naming an item's task: collision-free in practice.
_KEY_HASH_LENGTH = 32


def document_key(source_id: str, key: str) -> str:
    """The ``source_key`` of a source item's document in its knowledge base."""
    return f"source:{source_id}:{key}"


def task_name(run_id: str, key: str | None, sweep: int = 0) -> str:
    """The deterministic name of a run's task for ``key`` (None: the roots).

    A re-drive by the sweep gets a name of its own (``sweep``), since Cloud Tasks keeps
    the names of finished tasks reserved for a while.
    """
    part = "roots" if key is None else hashlib.sha256(key.encode()).hexdigest()[:_KEY_HASH_LENGTH]
    suffix = f"-s{sweep}" if sweep else ""
    return f"sync-{run_id}-{part}{suffix}"


def _enqueue(runtime: Runtime, run_id: str, keys: list[str | None], sweep: int = 0) -> None:
    queue = runtime.sync_tasks
    for key in keys:
        queue.enqueue(task_name(run_id, key, sweep), SyncTask(run_id=run_id, key=key))


@dataclass(frozen=True)
class RunStart:
    """The run a sync request started, or the one it joined."""

    run: SourceRun
    started: bool


def start_sync(
    runtime: Runtime, source_id: str, trigger: str, due_at: dt.datetime | None = None
) -> RunStart | None:
    """Start a run of the source, or join the one running.

    Args:
        runtime: The instance's runtime.
        source_id: The source.
        trigger: ``created``, ``manual`` or ``schedule``.
        due_at: A scheduled run's due time: at most one run starts per due time, and
            only while the source is unpaused and still due then.

    Returns:
        The run, or None for a scheduled start that no longer applies.

    Raises:
        NotFoundError: The source does not exist.
    """
    with runtime.database.transaction() as session:
        source = store.lock_source(session, source_id)
        if source is None:
            raise NotFoundError(f"source {source_id!r} not found", code="source_not_found")
        if source.current_run_id is not None:
            current = store.get_run(session, source.current_run_id)
            if current is not None:
                return RunStart(current, started=False)
        if trigger == "schedule" and (source.paused or source.next_run_at != due_at):
            return None
        run = store.start_run(session, source, trigger, due_at)
    if run is None:
        return None
    _enqueue(runtime, run.id, [None])
    log.info("sync started", extra={"source_id": source_id, "run_id": run.id, "trigger": trigger})
    return RunStart(run, started=True)


def _connector(runtime: Runtime, source: Source) -> Connector:
    kind = source_type(source.type)
    return kind.connector(runtime, kind.config_model.model_validate(source.config))


def _cap(runtime: Runtime, source: Source) -> int:
    kind = source_type(source.type)
    return max_items(kind.config_model.model_validate(source.config), runtime.settings)


def _live(runtime: Runtime, run_id: str) -> tuple[SourceRun, Source] | None:
    run = store.get_run(runtime.database, run_id)
    if run is None or run.status != "running":
        return None
    source = store.get_source(runtime.database, run.source_id)
    return None if source is None else (run, source)


def run_task(runtime: Runtime, task: SyncTask) -> str:
    """Run one task of a sync run: list the roots, or visit one item.

    Returns:
        What happened: ``listed``, ``visited``, ``finished`` (the run ended), or
        ``ignored`` (a duplicate, or the run or source is gone).

    Raises:
        Exception: A transient failure (the task is retried).
    """
    run = store.get_run(runtime.database, task.run_id)
    if run is not None and run.status == "finishing":
        return "finished" if complete_run(runtime, run.id) else "ignored"
    live = _live(runtime, task.run_id)
    if live is None:
        return "ignored"
    run, source = live
    if task.key is None:
        if run.roots_listed:  # the sweep's nudge: every item done, the run not ended
            return "finished" if finish_if_done(runtime, run.id) else "ignored"
        return _list_roots(runtime, run, source)
    item = store.get_item(runtime.database, source.id, task.key)
    if item is None or item.last_run_id != run.id or item.state != "pending":
        return "ignored"
    try:
        visit = _connector(runtime, source).visit(
            ItemRef(item.key, item.depth, item.hints), _previous(runtime, item)
        )
    except PermanentError as error:
        visit = Visit(Outcome.FAILED, error=error.message, error_code=error.code)
    result = _apply(runtime, source, item, visit)
    _finish_item(runtime, run, source, item, result, visit.children)
    return "visited"


def give_up(runtime: Runtime, task: SyncTask, error: Exception) -> None:
    """The task's last attempt failed: fail its item (or the run, for its roots)."""
    live = _live(runtime, task.run_id)
    if live is None:
        return
    run, source = live
    message = f"gave up after repeated failures: {error}"
    if task.key is None:
        with runtime.database.transaction() as session:
            store.fail_run(session, run, message)
        return
    item = store.get_item(runtime.database, source.id, task.key)
    if item is not None:
        failed = ItemResult("failed", error=message, error_code="retries_exhausted")
        _finish_item(runtime, run, source, item, failed, ())


def _list_roots(runtime: Runtime, run: SourceRun, source: Source) -> str:
    if run.roots_listed:
        return "ignored"
    try:
        roots = list(_connector(runtime, source).roots())
    except PermanentError as error:
        with runtime.database.transaction() as session:
            store.fail_run(session, run, f"{error.code}: {error.message}")
        return "listed"
    new = [NewItem(root.key, root.depth, dict(root.hints), is_root=True) for root in roots]
    with runtime.database.transaction() as session:
        locked = store.lock_run(session, run.id)
        if locked is None or locked.roots_listed or locked.status != "running":
            return "ignored"
        claimed, _ = store.claim_items(session, locked, new, _cap(runtime, source))
        store.mark_roots_listed(session, run.id)
    _enqueue(runtime, run.id, list(claimed))
    finish_if_done(runtime, run.id)
    return "listed"


def _previous(runtime: Runtime, item: SourceItem) -> Revision | None:
    """The stored revision, only while the item's document still exists."""
    revision = item.revision
    if revision is None or item.document_id is None:
        return None
    if not document_store.document_exists(runtime.database, item.document_id):
        return None
    return Revision(
        etag=revision.get("etag"),
        last_modified=revision.get("last_modified"),
        version=revision.get("version"),
    )


def _apply(runtime: Runtime, source: Source, item: SourceItem, visit: Visit) -> ItemResult:
    """Make the visit's outcome true in the knowledge base; return what to record."""
    outcome = visit.outcome
    if outcome is Outcome.FETCHED and visit.document is not None:
        return _ingest(runtime, source, item, visit.document)
    if outcome is Outcome.GONE:
        if item.document_id is None:
            return ItemResult("skipped")
        delete_document(runtime, item.document_id)
        return ItemResult("deleted")
    if outcome is Outcome.UNCHANGED:
        return ItemResult("unchanged")
    if outcome is Outcome.FAILED:
        return ItemResult("failed", error=visit.error or "failed", error_code=visit.error_code)
    return ItemResult("skipped", error=visit.error, error_code=visit.error_code)


def _ingest(
    runtime: Runtime, source: Source, item: SourceItem, fetched: FetchedDocument
) -> ItemResult:
    """Store the content where uploads go and register it as the item's document's version.

    The object's name is derived from the content, so a retried task writes the same
    object, and the pipeline's checksum dedupe makes unchanged content no new version.
    """
    database = runtime.database
    settings = runtime.settings
    filename = fetched.filename or "document"
    revision = dataclasses.asdict(fetched.revision)
    with database.transaction() as session:
        document_id = store.ensure_source_document(
            session,
            source_id=source.id,
            source_key=document_key(source.id, item.key),
            filename=filename,
            created_by=source.created_by,
            origin_url=fetched.origin_url,
            revision=revision,
        )
    if document_id is None:  # the source was deleted meanwhile
        return ItemResult("skipped", error="the source was deleted", error_code="deleted")
    checksum = md5_checksum(fetched.content)
    name = upload_object_name(document_id, checksum[4:20], filename)
    info = runtime.objects.stat(settings.upload_bucket, name)
    if info is None or info.checksum != checksum:
        info = runtime.objects.upload_bytes(
            settings.upload_bucket,
            name,
            fetched.content,
            content_type=fetched.content_type or "application/octet-stream",
        )
    registered = register_object(runtime, document_id, info, declared_type=fetched.content_type)
    if registered is None:  # deleted meanwhile (with its source); the object goes with it
        runtime.objects.delete(info.bucket, info.name)
        return ItemResult("skipped", error="the document was deleted", error_code="deleted")
    if item.document_id is None:
        outcome = "added"
    elif registered.version_id != item.version_id:
        outcome = "updated"
    else:
        outcome = "unchanged"
    return ItemResult(
        outcome,
        revision=revision,
        origin_url=fetched.origin_url,
        document_id=document_id,
        version_id=registered.version_id,
    )


def _finish_item(
    runtime: Runtime,
    run: SourceRun,
    source: Source,
    item: SourceItem,
    result: ItemResult,
    children: Sequence[ItemRef],
) -> None:
    new = [NewItem(child.key, child.depth, dict(child.hints)) for child in children]
    with runtime.database.transaction() as session:
        locked = store.lock_run(session, run.id)
        if locked is None or locked.status != "running":
            return
        if not store.finish_item(session, source.id, item.key, run.id, result):
            return  # a concurrent delivery of the same task finished it
        claimed, _ = store.claim_items(session, locked, new, _cap(runtime, source))
    _enqueue(runtime, run.id, list(claimed))
    finish_if_done(runtime, run.id)


def finish_if_done(runtime: Runtime, run_id: str) -> bool:
    """End the run if no item is pending (exactly once); True if this call ended it."""
    with runtime.database.transaction() as session:
        if not store.begin_finishing(session, run_id):
            return False
    return complete_run(runtime, run_id)


def complete_run(runtime: Runtime, run_id: str) -> bool:
    """Finish a ``finishing`` run: delete what it no longer found, write its summary.

    Idempotent, so the sweep completes a run whose finisher died midway.
    """
    database = runtime.database
    run = store.get_run(database, run_id)
    if run is None or run.status != "finishing":
        return False
    root_failed = store.root_failed(database, run.id)
    if not (run.truncated or root_failed):
        # Only a run that saw the whole source may conclude that an item is gone.
        for unseen in store.unseen_items(database, run.source_id, run.id):
            if unseen.document_id is not None:
                delete_document(runtime, unseen.document_id)
            with database.transaction() as session:
                store.mark_unseen_deleted(session, run.source_id, unseen.key, run.id)
        with database.transaction() as session:
            store.forget_unseen(session, run.source_id, run.id)
    counts = store.outcome_counts(database, run.id)
    error = store.last_error(database, run.id)
    status = "failed" if root_failed else "partial" if counts["failed"] else "succeeded"
    with database.transaction() as session:
        ended = store.complete_run(session, run, status, counts, error)
    if ended:
        log.info(
            "sync finished",
            extra={"run_id": run.id, "source_id": run.source_id, "status": status, **counts},
        )
    return ended


def delete_source(runtime: Runtime, source_id: str) -> None:
    """Delete a source: its run stops, its documents go (the one removal path), then it.

    Raises:
        NotFoundError: No such source.
        ConflictError: Documents of it kept arriving (a task of its run still writing).
    """
    database = runtime.database
    source = store.get_source(database, source_id)
    if source is None:
        raise NotFoundError(f"source {source_id!r} not found", code="source_not_found")
    if source.current_run_id is not None:
        run = store.get_run(database, source.current_run_id)
        if run is not None:
            with database.transaction() as session:
                # Its tasks see the run ended and do nothing more.
                store.fail_run(session, run, "the source was deleted")
    for _ in range(REMOVAL_ROUNDS):
        for document_id in store.source_document_ids(database, source.id):
            delete_document(runtime, document_id)
        with database.transaction() as session:
            # Holds off new documents of the source (they share-lock its row) until it is
            # gone; one that slipped in since the listing means another round.
            if store.lock_source_for_delete(session, source.id):
                store.delete_source_row(session, source.id)
                return
    raise ConflictError("the source kept receiving documents; try again", code="busy")


@dataclass
class SourceSweep:
    """What one sweep did to sources."""

    started: list[str] = field(default_factory=list)  # run ids
    redriven: list[str] = field(default_factory=list)  # run ids
    failed: list[str] = field(default_factory=list)  # run ids whose lost items failed


def sweep_sources(
    runtime: Runtime,
    *,
    stall_after_s: int | None = None,
    max_sweeps: int | None = None,
    limit: int = 100,
) -> SourceSweep:
    """Start due scheduled runs; re-drive (or end) runs with no progress."""
    settings = runtime.settings
    stall_after_s = settings.stall_after_s if stall_after_s is None else stall_after_s
    max_sweeps = settings.max_sweeps if max_sweeps is None else max_sweeps
    report = SourceSweep()
    for due in store.due_sources(runtime.database, limit):
        start = start_sync(runtime, due.id, "schedule", due.next_run_at)
        if start is not None and start.started:
            report.started.append(start.run.id)
    with runtime.database.transaction() as session:
        stalled = store.claim_stalled_runs(session, stall_after_s, limit)
    for run in stalled:
        _recover(runtime, run, max_sweeps, report)
    return report


def _recover(runtime: Runtime, run: SourceRun, max_sweeps: int, report: SourceSweep) -> None:
    """Send a stalled run's lost tasks again; the sync function does the work.

    The sweep itself only reads and writes rows and enqueues: ending a run deletes
    documents, which the sync function's identity may do.
    """
    if run.status == "finishing" or (run.roots_listed and run.sweeps > max_sweeps):
        if run.status == "running":
            with runtime.database.transaction() as session:
                store.fail_pending(
                    session, run.id, f"lost {max_sweeps} times; sync again to retry", "stalled"
                )
            report.failed.append(run.id)
        _enqueue(runtime, run.id, [None], sweep=run.sweeps)  # ends the run
        report.redriven.append(run.id)
        return
    if run.sweeps > max_sweeps:  # the roots were never listed
        with runtime.database.transaction() as session:
            store.fail_run(session, run, "the run's first task was lost repeatedly")
        report.failed.append(run.id)
        return
    pending = [item.key for item in store.pending_items(runtime.database, run.id)]
    keys: list[str | None] = [*pending] if run.roots_listed and pending else [None]
    _enqueue(runtime, run.id, keys, sweep=run.sweeps)
    report.redriven.append(run.id)
