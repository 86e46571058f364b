"""The pipeline steps after ingest: parse, chunk, embed, index, and the dead letter.

Each step loads the version, returns quietly if the version is gone or already past
the step (a redelivery), does its work, then moves the version on with a conditional
transition and hands over to the next step by id.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from shared import trace_context
from shared.errors import LimitExceededError, PermanentError
from shared.knowledge_bases import get_knowledge_base
from shared.models import (
    ChunkRequested,
    EmbedTask,
    IndexRequested,
    ParsedDocument,
)
from shared.paths import parsed_object_name
from shared.periods import reporting_period
from shared.pipeline.approval import (
    WAITING,
    Superseded,
    activate_version,
    drop_superseded_objects,
)
from shared.pipeline.leases import Heartbeat, new_holder
from shared.pipeline.outbox import relay_after_commit
from shared.pipeline.versions import claim_stage, fail_version, transition
from shared.runtime import Runtime
from shared.storage import ObjectMissingError
from shared.store import chunks as chunk_store
from shared.store import documents as document_store
from shared.store import knowledge_bases as kb_store
from shared.store import versions as version_store
from shared.store.chunks import NewChunk, count_unembedded
from shared.store.versions import Version, load_version
from shared.tracing import traced_step

log = logging.getLogger(__name__)


@traced_step("ragline.pipeline.parse")
def parse_version(runtime: Runtime, version_id: str) -> bool:
    """Download, parse and store the version's text; publish ``chunk``.

    The attempt holds the version's parsing stage with a lease it renews while it works
    (:mod:`shared.pipeline.leases`).

    Returns:
        True if the step ran, False if there was nothing to do (gone or past parsing).
    """
    database = runtime.database
    settings = runtime.settings
    holder = new_holder("parsing")
    with database.transaction() as session:
        version = claim_stage(
            session, version_id, "parsing", "received", holder=holder, lease_s=settings.lease_s
        )
    if version is None:
        return False
    _about(version)
    with Heartbeat(database, version_id, holder, settings.lease_s):
        return _parse_held(runtime, version, holder)


def _about(version: Version) -> None:
    # The step's later log lines name the document and knowledge base too.
    trace_context.bind(document_id=version.document_id, kb_id=version.kb_id)


def _parse_held(runtime: Runtime, version: Version, holder: str) -> bool:
    """The parse of a version whose parsing stage ``holder`` holds."""
    database = runtime.database
    settings = runtime.settings
    limits = runtime.parse_limits
    version_id = version.id
    if version.size_bytes is not None and version.size_bytes > limits.max_bytes:
        raise LimitExceededError(
            f"file is {version.size_bytes:,} bytes; the limit is {limits.max_bytes:,} bytes"
        )
    try:
        data = runtime.objects.download_bytes(
            version.object_bucket, version.object_name, version.object_generation
        )
    except ObjectMissingError:
        if version_store.has_newer_version(database, version.document_id, version.number):
            # Replaced before it was parsed: the newer version carries on instead.
            with database.transaction() as session:
                transition(session, version_id, "superseded", ("parsing",))
            relay_after_commit(runtime)
            return False
        raise
    parsed = runtime.parser(data, filename=version.filename, limits=limits)
    runtime.objects.write_json(
        settings.work_bucket, parsed_object_name(version_id), parsed.model_dump_json()
    )
    with database.transaction() as session:
        # Locked, so a concurrent delete either waits for this commit (and then deletes
        # the parsed text written above) or has committed (and the text is removed here).
        gone = load_version(session, version_id, lock=True) is None
        if not gone:
            version_store.record_parse(
                session,
                version_id,
                content_type=parsed.content_type,
                page_count=parsed.page_count,
                source_date=document_date(parsed),
                profile=document_profile(version.filename, parsed),
                period=reporting_period(parsed.text),
            )
            if parsed.title:
                document_store.set_title(session, version.document_id, parsed.title[:500])
            version_store.release_lease(session, version_id, holder)
    if gone:
        runtime.objects.delete(settings.work_bucket, parsed_object_name(version_id))
        return False
    runtime.publisher.publish(settings.topic_chunk, ChunkRequested(version_id=version_id))
    return True


# How much of a document's opening text its profile keeps: a title page or first
# paragraphs name the company, product or person the document is about.
PROFILE_OPENING_CHARS = 1500


def document_profile(filename: str, parsed: ParsedDocument) -> str:
    """The text a version's profile is built from: file name, title and opening text."""
    return "\n".join(
        part for part in (filename, parsed.title or "", parsed.text[:PROFILE_OPENING_CHARS]) if part
    )


def document_date(parsed: ParsedDocument) -> str | None:
    """The date the document declares (e.g. a PDF's creation date) as ISO 8601, if any."""
    value = parsed.metadata.get("created") or parsed.metadata.get("date")
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value).isoformat()
    except ValueError:
        return None


@traced_step("ragline.pipeline.chunk")
def chunk_version(runtime: Runtime, version_id: str) -> bool:
    """Split the parsed text into chunks, store them, and enqueue their embed tasks.

    The attempt holds the version's chunking stage with a lease, as parse does.
    """
    database = runtime.database
    settings = runtime.settings
    holder = new_holder("chunking")
    with database.transaction() as session:
        version = claim_stage(
            session, version_id, "chunking", "parsing", holder=holder, lease_s=settings.lease_s
        )
    if version is None:
        return False
    _about(version)
    with Heartbeat(database, version_id, holder, settings.lease_s):
        return _chunk_held(runtime, version)


def _chunk_held(runtime: Runtime, version: Version) -> bool:
    """The chunking of a version whose chunking stage this attempt holds."""
    from shared.chunking import chunk_document, layout_metadata
    from shared.embeddings import get_embedder

    database = runtime.database
    settings = runtime.settings
    version_id = version.id
    kb = get_knowledge_base(database, version.kb_id)
    if kb is None:
        return False
    parsed = ParsedDocument.model_validate_json(
        runtime.objects.read_text(settings.work_bucket, parsed_object_name(version_id))
    )
    embedder = get_embedder(kb.embedding_model, kb.embedding_dim)
    max_tokens = min(kb.chunk_tokens, embedder.max_input_tokens)
    overlap = min(kb.chunk_overlap, max_tokens // 4)
    drafts = chunk_document(
        parsed,
        max_tokens=max_tokens,
        overlap_tokens=overlap,
        counter=embedder.counter,
        # OpenAI counts tokens in its own BPE, not available offline: a BPE token is at
        # least one UTF-8 byte, so the embedder's byte bound bounds tokens provably.
        hard_max_bytes=embedder.max_input_bytes,
    )
    if not drafts:
        raise PermanentError("the document produced no text to index", code="empty_content")
    chunks = [
        NewChunk(
            ordinal=draft.ordinal,
            text=draft.text,
            page_start=draft.page_start,
            page_end=draft.page_end,
            char_start=draft.char_start,
            char_end=draft.char_end,
            heading_path=tuple(draft.heading_path),
            token_count=draft.token_count,
            # Where each chunk sits on its pages, for the citation viewer.
            metadata=layout_metadata(draft, parsed.pages),
        )
        for draft in drafts
    ]
    with database.transaction() as session:
        chunk_store.upsert_chunks(
            session,
            version_id=version_id,
            document_id=version.document_id,
            kb_id=version.kb_id,
            chunks=chunks,
        )
        chunk_store.delete_chunks_from(session, version_id, len(drafts))
        moved = transition(
            session,
            version_id,
            "embedding",
            ("chunking",),
            detail={"chunk_count": len(drafts)},
            chunk_count=len(drafts),
            token_total=sum(max(draft.token_count, 1) for draft in drafts),
            embedding_model=kb.embedding_model,
        )
    if moved is None:
        return False
    batch = max(1, settings.embed_batch_size)
    queue = runtime.tasks
    for first in range(0, len(drafts), batch):
        last = min(first + batch, len(drafts)) - 1
        task = EmbedTask(version_id=version_id, first_ordinal=first, last_ordinal=last)
        queue.enqueue(f"embed-{version_id}-{first}-{last}", task)
    return True


@traced_step("ragline.pipeline.embed")
def embed_batch(runtime: Runtime, task: EmbedTask) -> bool:
    """Embed the task's chunks that have no vector yet; publish ``index`` when none are left.

    With a rate-limited provider the request is filled with other versions' waiting
    chunks too (:mod:`shared.pipeline.pooled`); each version it completes moves on.
    """
    from shared.embeddings import get_embedder
    from shared.embeddings.base import RateLimitedEmbedder

    database = runtime.database
    settings = runtime.settings
    with database.session() as session:
        version = load_version(session, task.version_id)
    if version is None or version.status not in ("embedding", "indexing"):
        return False
    _about(version)
    kb = get_knowledge_base(database, version.kb_id)
    if kb is None:
        return False
    pending = chunk_store.unembedded_chunks(
        database, task.version_id, task.first_ordinal, task.last_ordinal
    )
    filled: set[str] = set()
    if pending:
        # Batches run side by side, so none holds the stage: each keeps the sweeper off.
        version_store.extend_shared_lease(database, task.version_id, settings.lease_s)
        embedder = get_embedder(kb.embedding_model, kb.embedding_dim)
        if isinstance(embedder, RateLimitedEmbedder):
            from shared.pipeline.pooled import embed_pooled

            filled = embed_pooled(runtime, embedder, kb, task) - {task.version_id}
        else:
            _embed_own(runtime, embedder.embed, kb.embedding_dim, pending)
    for other in sorted(filled):
        _finish_embedding(runtime, other, progressed=True)
    return _finish_embedding(runtime, task.version_id, progressed=bool(pending))


def _embed_own(
    runtime: Runtime,
    embed: Callable[[list[str]], list[list[float]]],
    dim: int,
    pending: list[chunk_store.ChunkText],
) -> None:
    """Embed a task's own pending chunks in one call and store their vectors."""
    vectors = embed([chunk.text for chunk in pending])
    if len(vectors) != len(pending):
        raise RuntimeError(f"embedder returned {len(vectors)} vectors for {len(pending)} texts")
    if any(len(vector) != dim for vector in vectors):
        raise RuntimeError(f"embedder returned vectors not of dimension {dim}")
    with runtime.database.transaction() as session:
        chunk_store.write_vectors(session, [chunk.id for chunk in pending], vectors, dim)


def _finish_embedding(runtime: Runtime, version_id: str, *, progressed: bool) -> bool:
    """Record progress, or move a version with no chunk left to embed on to ``index``."""
    with runtime.database.transaction() as session:
        if count_unembedded(session, version_id) > 0:
            if progressed:
                # Progress, as the sweeper sees it: a long embedding stage is not stalled.
                version_store.touch(session, version_id)
            return True
        # Every batch that finds nothing left publishes: the last one to commit always
        # sees zero, and a lost publish is retried by the task's own retry.
        transition(session, version_id, "indexing", ("embedding", "indexing"))
    runtime.publisher.publish(runtime.settings.topic_index, IndexRequested(version_id=version_id))
    return True


@traced_step("ragline.pipeline.index")
def index_version(runtime: Runtime, version_id: str) -> bool:
    """Make the version active (if newest) or leave it awaiting approval; drop superseded chunks.

    In a knowledge base that requires approval the version waits in
    ``awaiting_approval`` and the active version stays as it is
    (:mod:`shared.pipeline.approval`).
    """
    database = runtime.database
    superseded: list[Superseded] = []
    with database.transaction() as session:
        version = load_version(session, version_id)
        if version is None or version.status != "indexing":
            return False
        _about(version)
        if count_unembedded(session, version_id) > 0:
            return False  # premature: the last embed batch publishes again
        active = document_store.lock_active_version(session, version.document_id)
        if active is None:
            return False
        if active.number is not None and active.number > version.number:
            # A newer version went live first: this one is already stale.
            outcome = "superseded"
            if transition(session, version_id, "superseded", ("indexing",)) is None:
                return False
            chunk_store.delete_version_chunks(session, version_id)
            superseded.append(Superseded(version.id, version.object_bucket, version.object_name))
        elif kb_store.requires_approval(session, version.kb_id):
            outcome = WAITING
            if transition(session, version_id, WAITING, ("indexing",)) is None:
                return False
        else:
            outcome = "ready"
            activated = activate_version(session, version, "indexing", approved_by=None)
            if activated is None:
                return False
            superseded = activated
    # The events are in the outbox since the commit; publish them now if possible.
    relay_after_commit(runtime)
    drop_superseded_objects(runtime, superseded, keep=version.object_name)
    log.info("version %s", outcome, extra={"version_id": version_id})
    return True


def fail_and_announce(runtime: Runtime, version_id: str, code: str, message: str) -> bool:
    """Fail the version (if still in progress) and publish its lifecycle event.

    The event is written to the outbox with the failure; the relay publishes it.
    """
    database = runtime.database
    version = fail_version(database, version_id, code, message)
    if version is None:
        return False
    log.warning(
        "version failed",
        extra={
            "version_id": version_id,
            "document_id": version.document_id,
            "error_code": code,
            "error": message,
        },
    )
    relay_after_commit(runtime)
    return True


def dead_letter(runtime: Runtime, version_id: str, attempts: int | None = None) -> bool:
    """Fail a version whose message ran out of delivery attempts, with its last error."""
    # Every dead-lettered message is worth an alert (monitoring.tf), failed version or not.
    log.error("message dead-lettered", extra={"version_id": version_id, "attempts": attempts})
    database = runtime.database
    with database.session() as session:
        version = load_version(session, version_id)
    if version is None:
        return False
    reason = version.last_error or "no error was recorded"
    tries = f" after {attempts} attempts" if attempts else ""
    return fail_and_announce(
        runtime, version_id, "delivery_failed", f"processing gave up{tries}: {reason}"
    )


__all__ = [
    "chunk_version",
    "dead_letter",
    "embed_batch",
    "fail_and_announce",
    "index_version",
    "parse_version",
]
