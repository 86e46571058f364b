"""Re-drives versions that stopped making progress, so nothing stays stuck.

At-least-once delivery covers a message that fails; it cannot cover one that was never
sent (a publish that failed after its transaction committed, a task lost with its
queue). The sweeper finds versions whose ``updated_at`` has not moved for
``stall_after_s`` and re-sends the message their current stage waits for. Every step
is idempotent, so a re-drive of a version that was merely slow does no harm. After
``max_sweeps`` re-drives the version fails with a clear reason.

Each sweep also runs the outbox relay (:mod:`shared.pipeline.outbox`): lifecycle
events whose publish failed, or never ran, after their commit are published now; and
it deletes events and webhook delivery logs older than ``outbox_retention_days``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from shared.models import ChunkRequested, EmbedTask, IndexRequested, ParseRequested
from shared.pipeline.outbox import relay_outbox
from shared.pipeline.steps import fail_and_announce
from shared.pipeline.versions import IN_PROGRESS, transition
from shared.runtime import Runtime
from shared.store import chunks as chunk_store
from shared.store import outbox as outbox_store
from shared.store import versions as version_store
from shared.store import webhooks as webhook_store
from shared.store.events import record_event

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    """What one sweep did."""

    redriven: dict[str, str] = field(default_factory=dict)  # version id -> stage
    failed: list[str] = field(default_factory=list)
    published: list[str] = field(default_factory=list)  # outbox event ids

    def to_json(self) -> dict[str, object]:
        """The report as the sweep function returns it."""
        return {"redriven": self.redriven, "failed": self.failed, "published": self.published}


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
        # Claim the stalled versions: bumping updated_at means a concurrent or the next
        # sweep leaves them alone until they stall again.
        claimed = version_store.claim_stalled(session, IN_PROGRESS, stall_after_s, limit)
        for stalled in claimed:
            if stalled.sweeps <= max_sweeps:
                record_event(
                    session,
                    document_id=stalled.document_id,
                    version_id=stalled.id,
                    kb_id=stalled.kb_id,
                    status="redriven",
                    detail={"stage": stalled.status, "sweep": stalled.sweeps},
                )
    report = SweepReport()
    for stalled in claimed:
        if stalled.sweeps > max_sweeps:
            fail_and_announce(
                runtime,
                stalled.id,
                "stalled",
                f"{stalled.status}: no progress after {max_sweeps} re-drives"
                f" ({stall_after_s} s apart); upload the file again to retry",
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
