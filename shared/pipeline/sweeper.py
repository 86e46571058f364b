"""Re-drives versions that stopped making progress, so nothing stays stuck.

The scheduled :func:`sweep` also expires signed uploads whose file never arrived
(:mod:`shared.pipeline.expiry`), starts due source syncs and re-drives stalled ones
(:func:`shared.pipeline.sync.sweep_sources`), and forgets quota counters of ended windows.

At-least-once delivery covers a message that fails; it cannot cover one that was never
sent or died with its process (a publish that failed after its transaction committed,
a task lost with its queue, an instance killed mid-parse, the local stack's in-memory
bus after a crash). The sweeper finds versions with no live stage lease
(:mod:`shared.pipeline.leases`) and no progress (``updated_at``) for ``stall_after_s``
and re-sends the message their current stage waits for. It never re-drives inside a
live lease, and every step is idempotent, so a re-drive of a version that was merely
slow does no harm.

The re-drive budget is counted per stage and reset by progress: a stage fails as
``stalled`` only once more than ``max_sweeps`` of its attempts started and were lost
(their lease expired with a holder), or more than ``max_sweeps`` re-drives in a row
started no attempt at all (their message was lost or ignored). A re-drive whose
message is dropped as a duplicate counts as neither: it only happens when another
attempt claimed the stage after the sweep, and that claim resets the idle count.

Each sweep also runs the outbox relay (:mod:`shared.pipeline.outbox`): lifecycle
events whose publish failed, or never ran, after their commit are published now; and
it deletes events and webhook delivery logs older than ``outbox_retention_days``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from shared.models import ChunkRequested, EmbedTask, IndexRequested, ParseRequested
from shared.pipeline.expiry import ExpiryReport, expire_uploads
from shared.pipeline.outbox import relay_outbox
from shared.pipeline.steps import fail_and_announce
from shared.pipeline.sync import SourceSweep, sweep_sources
from shared.pipeline.versions import IN_PROGRESS, transition
from shared.runtime import Runtime
from shared.store import chunks as chunk_store
from shared.store import outbox as outbox_store
from shared.store import quotas as quota_store
from shared.store import versions as version_store
from shared.store import webhooks as webhook_store
from shared.store.events import record_event
from shared.store.versions import StalledVersion

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    """What one sweep did."""

    redriven: dict[str, str] = field(default_factory=dict)  # version id -> stage
    failed: list[str] = field(default_factory=list)
    published: list[str] = field(default_factory=list)  # outbox event ids
    expired: ExpiryReport = field(default_factory=ExpiryReport)
    sources: SourceSweep = field(default_factory=SourceSweep)

    def to_json(self) -> dict[str, object]:
        """The report as the sweep function returns it."""
        return {
            "redriven": self.redriven,
            "failed": self.failed,
            "published": self.published,
            "expired_uploads": self.expired.expired,
            "removed_documents": self.expired.removed_documents,
            "recovered_uploads": self.expired.recovered,
            "syncs_started": self.sources.started,
            "syncs_redriven": self.sources.redriven,
            "syncs_failed": self.sources.failed,
        }


def sweep(runtime: Runtime) -> SweepReport:
    """The scheduled sweep: stalled versions, overdue signed uploads, then source syncs."""
    report = sweep_stalled(runtime)
    report.expired = expire_uploads(runtime)
    report.sources = sweep_sources(runtime)
    forget_ended_quota_windows(runtime)
    return report


def forget_ended_quota_windows(runtime: Runtime) -> int:
    """Delete quota counters no limit reads any more (their window and the one before).

    Returns:
        How many counters went.
    """
    now = runtime.clock()
    removed = quota_store.delete_ended_windows(
        runtime.database,
        minute_before=now - dt.timedelta(minutes=2),
        day_before=now - dt.timedelta(days=2),
        month_before=now - dt.timedelta(days=62),
    )
    if removed:
        log.info("quota windows forgotten", extra={"removed": removed})
    return removed


def sweep_stalled(
    runtime: Runtime,
    *,
    stall_after_s: int | None = None,
    max_sweeps: int | None = None,
    limit: int = 500,
) -> SweepReport:
    """Re-drive (or fail) every version with no progress for ``stall_after_s`` seconds."""
    database = runtime.database
    settings = runtime.settings
    stall_after_s = settings.stall_after_s if stall_after_s is None else stall_after_s
    max_sweeps = settings.max_sweeps if max_sweeps is None else max_sweeps
    with database.transaction() as session:
        # Claim the stalled versions: this counts the re-drive, and bumping updated_at
        # means a concurrent or the next sweep leaves them alone until they stall again.
        claimed = version_store.claim_stalled(session, IN_PROGRESS, stall_after_s, limit)
        for stalled in claimed:
            if not _budget_spent(stalled, max_sweeps):
                record_event(
                    session,
                    document_id=stalled.document_id,
                    version_id=stalled.id,
                    kb_id=stalled.kb_id,
                    status="redriven",
                    detail={
                        "stage": stalled.status,
                        "sweep": stalled.sweeps,
                        "lost_attempts": stalled.lost_attempts,
                    },
                )
    report = SweepReport()
    for stalled in claimed:
        if _budget_spent(stalled, max_sweeps):
            fail_and_announce(
                runtime,
                stalled.id,
                "stalled",
                f"{stalled.status}: no progress after {max_sweeps} re-drives"
                f" ({stalled.lost_attempts} attempts lost, {stall_after_s} s without"
                " progress each); upload the file again to retry",
            )
            report.failed.append(stalled.id)
        else:
            redrive(runtime, stalled.id, stalled.status, stalled.sweeps)
            report.redriven[stalled.id] = stalled.status
    report.published = relay_outbox(runtime).published
    with database.transaction() as session:
        # Deliveries read their event from the outbox: both go after the same retention.
        outbox_store.prune_published(session, settings.outbox_retention_days)
        webhook_store.prune_deliveries(session, settings.outbox_retention_days)
    if claimed:
        log.info(
            "sweep re-drove %d and failed %d versions", len(report.redriven), len(report.failed)
        )
    return report


def _budget_spent(stalled: StalledVersion, max_sweeps: int) -> bool:
    """Whether the stage has had its re-drives: lost attempts or unanswered re-drives."""
    return stalled.lost_attempts > max_sweeps or stalled.idle_redrives > max_sweeps


def redrive(runtime: Runtime, version_id: str, status: str, sweep: int) -> None:
    """Send again whatever the version's current stage is waiting for."""
    settings = runtime.settings
    publisher = runtime.publisher
    if status in ("received", "parsing"):
        publisher.publish(settings.topic_parse, ParseRequested(version_id=version_id))
    elif status == "chunking":
        publisher.publish(settings.topic_chunk, ChunkRequested(version_id=version_id))
    elif status == "embedding":
        _redrive_embedding(runtime, version_id, sweep)
    elif status == "indexing":
        publisher.publish(settings.topic_index, IndexRequested(version_id=version_id))


def _redrive_embedding(runtime: Runtime, version_id: str, sweep: int) -> None:
    database = runtime.database
    ordinals = chunk_store.unembedded_ordinals(database, version_id)
    if not ordinals:
        # Every vector is written but the index message was lost.
        with database.transaction() as session:
            transition(session, version_id, "indexing", ("embedding",))
        runtime.publisher.publish(
            runtime.settings.topic_index, IndexRequested(version_id=version_id)
        )
        return
    batch = max(1, runtime.settings.embed_batch_size)
    queue = runtime.tasks
    for start in range(0, len(ordinals), batch):
        group = ordinals[start : start + batch]
        first, last = group[0], group[-1]
        task = EmbedTask(version_id=version_id, first_ordinal=first, last_ordinal=last)
        # A new name per sweep: Cloud Tasks keeps names of finished tasks for a while.
        queue.enqueue(f"embed-{version_id}-{first}-{last}-sweep{sweep}", task)
