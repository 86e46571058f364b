"""The pipeline steps after ingest: parse, chunk, embed, index, and the dead letter.

Each step loads the version, returns quietly if the version is gone or already past
the step (a redelivery), does its work, then moves the version on with a conditional
transition and hands over to the next step by id.
"""

from __future__ import annotations

import datetime as dt
import logging

from shared.db import Database
from shared.db.connection import Session, copy_id_vectors
from shared.errors import LimitExceededError, PermanentError
from shared.knowledge_bases import get_knowledge_base
from shared.models import (
    ChunkRequested,
    DocumentLifecycleEvent,
    EmbedTask,
    IndexRequested,
    ParsedDocument,
)
from shared.paths import parsed_object_name
from shared.pipeline.versions import (
    IN_PROGRESS,
    claim_stage,
    count_unembedded,
    fail_version,
    load_version,
    transition,
)
from shared.runtime import Runtime
from shared.storage import ObjectMissingError

log = logging.getLogger(__name__)


def parse_version(runtime: Runtime, version_id: str) -> bool:
    """Download, parse and store the version's text; publish ``chunk``.

    Returns:
        True if the step ran, False if there was nothing to do (gone or past parsing).
    """
    database = runtime.database
    settings = runtime.settings
    limits = runtime.parse_limits
    with database.transaction() as session:
        version = claim_stage(
            session, version_id, "parsing", "received", lease_s=settings.parse_lease_s
        )
    if version is None:
        return False
    if version.size_bytes is not None and version.size_bytes > limits.max_bytes:
        raise LimitExceededError(
            f"file is {version.size_bytes:,} bytes; the limit is {limits.max_bytes:,} bytes"
        )
    try:
        data = runtime.objects.download_bytes(
            version.object_bucket, version.object_name, version.object_generation
        )
    except ObjectMissingError:
        if _has_newer_version(database, version.document_id, version.number):
            # Replaced before it was parsed: the newer version carries on instead.
            with database.transaction() as session:
                transition(session, version_id, "superseded", ("parsing",))
            return False
        raise
    parsed = runtime.parser(data, filename=version.filename, limits=limits)
    runtime.objects.write_json(
        settings.work_bucket, parsed_object_name(version_id), parsed.model_dump_json()
    )
    with database.transaction() as session:
        session.run(
            "UPDATE document_versions SET content_type = :t, page_count = :p,"
            " source_date = coalesce(CAST(:date AS timestamptz), received_at, created_at),"
            # Dots, slashes and underscores split too, so "AMAZON.COM" or a file name's
            # parts match the words a question uses ("Amazon").
            " profile = to_tsvector('english', regexp_replace(:profile, '[._/@-]', ' ', 'g'))"
            " WHERE id = CAST(:id AS uuid)",
            t=parsed.content_type,
            p=parsed.page_count,
            date=document_date(parsed),
            profile=document_profile(version.filename, parsed),
            id=version_id,
        )
        if parsed.title:
            session.run(
                "UPDATE documents SET title = :title WHERE id = CAST(:d AS uuid)",
                title=parsed.title[:500],
                d=version.document_id,
            )
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


def _has_newer_version(database: Database, document_id: str, number: int) -> bool:
    return bool(
        database.scalar(
            "SELECT count(*) FROM document_versions WHERE document_id = CAST(:d AS uuid)"
            " AND number > :n",
            d=document_id,
            n=number,
        )
    )


def chunk_version(runtime: Runtime, version_id: str) -> bool:
    """Split the parsed text into chunks, store them, and enqueue their embed tasks."""
    import json

    database = runtime.database
    from shared.chunking import chunk_document, layout_metadata
    from shared.embeddings import get_embedder

    settings = runtime.settings
    with database.transaction() as session:
        version = transition(session, version_id, "chunking", ("parsing", "chunking"))
    if version is None:
        return False
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
    with database.transaction() as session:
        session.run(
            "INSERT INTO chunks (version_id, document_id, kb_id, ordinal, text, page_start,"
            " page_end, char_start, char_end, heading_path, token_count, metadata)"
            " SELECT CAST(:v AS uuid), CAST(:d AS uuid), CAST(:k AS uuid), u.ordinal, u.text,"
            " u.page_start, u.page_end, u.char_start, u.char_end,"
            " CAST(u.heading_path AS text[]), u.token_count, CAST(u.metadata AS jsonb)"
            " FROM unnest(CAST(:ordinals AS int[]), CAST(:texts AS text[]),"
            " CAST(:page_starts AS int[]), CAST(:page_ends AS int[]), CAST(:char_starts AS int[]),"
            " CAST(:char_ends AS int[]), CAST(:headings AS text[]), CAST(:tokens AS int[]),"
            " CAST(:metadata AS text[]))"
            " AS u(ordinal, text, page_start, page_end, char_start, char_end, heading_path,"
            " token_count, metadata)"
            " ON CONFLICT (version_id, ordinal) DO UPDATE SET text = excluded.text,"
            " page_start = excluded.page_start, page_end = excluded.page_end,"
            " char_start = excluded.char_start, char_end = excluded.char_end,"
            " heading_path = excluded.heading_path, token_count = excluded.token_count,"
            " metadata = excluded.metadata,"
            # A redelivered chunk message reproduces the same text: keep its embedding.
            " embedding = CASE WHEN chunks.text = excluded.text THEN chunks.embedding END,"
            " embedded_at = CASE WHEN chunks.text = excluded.text THEN chunks.embedded_at END",
            v=version_id,
            d=version.document_id,
            k=version.kb_id,
            ordinals=[draft.ordinal for draft in drafts],
            texts=[draft.text for draft in drafts],
            page_starts=[draft.page_start for draft in drafts],
            page_ends=[draft.page_end for draft in drafts],
            char_starts=[draft.char_start for draft in drafts],
            char_ends=[draft.char_end for draft in drafts],
            headings=[_pg_text_array(draft.heading_path) for draft in drafts],
            tokens=[draft.token_count for draft in drafts],
            # Where each chunk sits on its pages, for the citation viewer; sent as text[]
            # and cast per row, like the other arrays.
            metadata=[json.dumps(layout_metadata(draft, parsed.pages)) for draft in drafts],
        )
        session.run(
            "DELETE FROM chunks WHERE version_id = CAST(:v AS uuid) AND ordinal >= :n",
            v=version_id,
            n=len(drafts),
        )
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


def _pg_text_array(values: list[str]) -> str:
    """Render a list as a PostgreSQL text[] literal (for arrays of arrays via unnest)."""
    escaped = ['"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values]
    return "{" + ",".join(escaped) + "}"


def write_vectors(session: Session, ids: list[int], vectors: list[list[float]], dim: int) -> None:
    """Store ``vectors`` on the chunks ``ids``, in the caller's transaction.

    The vectors cross in COPY's binary format (exact float32s, no formatting here or
    parsing there) into this connection's staging table, emptied at every commit, then
    onto their chunks in the same transaction.
    """
    import io

    session.run(
        "CREATE TEMP TABLE IF NOT EXISTS pg_temp.embed_vectors"
        " (id bigint NOT NULL, embedding vector NOT NULL) ON COMMIT DELETE ROWS"
    )
    session.run(
        "COPY pg_temp.embed_vectors (id, embedding) FROM STDIN (FORMAT binary)",
        stream=io.BytesIO(copy_id_vectors(ids, vectors)),
    )
    session.run(
        "UPDATE chunks SET embedding = v.embedding, embedding_dim = :dim,"
        " embedded_at = now() FROM pg_temp.embed_vectors v WHERE chunks.id = v.id"
        # The staging table has no statistics: naming the ids keeps the plan on the
        # primary key rather than a hash join over every chunk.
        " AND chunks.id = ANY(CAST(:ids AS bigint[]))",
        ids=ids,
        dim=dim,
    )


def embed_batch(runtime: Runtime, task: EmbedTask) -> bool:
    """Embed the task's chunks that have no vector yet; publish ``index`` when none are left."""
    from shared.embeddings import get_embedder

    database = runtime.database
    settings = runtime.settings
    with database.session() as session:
        version = load_version(session, task.version_id)
    if version is None or version.status not in ("embedding", "indexing"):
        return False
    kb = get_knowledge_base(database, version.kb_id)
    if kb is None:
        return False
    rows = database.run(
        "SELECT id, text FROM chunks WHERE version_id = CAST(:v AS uuid)"
        " AND ordinal BETWEEN :first AND :last AND embedding IS NULL ORDER BY ordinal",
        v=task.version_id,
        first=task.first_ordinal,
        last=task.last_ordinal,
    )
    if rows:
        embedder = get_embedder(kb.embedding_model, kb.embedding_dim)
        vectors = embedder.embed([row[1] for row in rows])
        if len(vectors) != len(rows):
            raise RuntimeError(f"embedder returned {len(vectors)} vectors for {len(rows)} texts")
        if any(len(vector) != kb.embedding_dim for vector in vectors):
            raise RuntimeError(f"embedder returned vectors not of dimension {kb.embedding_dim}")
        with database.transaction() as session:
            write_vectors(session, [row[0] for row in rows], vectors, kb.embedding_dim)
    with database.transaction() as session:
        if count_unembedded(session, task.version_id) > 0:
            if rows:
                # Progress, as the sweeper sees it: a long embedding stage is not stalled.
                session.run(
                    "UPDATE document_versions SET updated_at = now() WHERE id = CAST(:v AS uuid)",
                    v=task.version_id,
                )
            return True
        # Every batch that finds nothing left publishes: the last one to commit always
        # sees zero, and a lost publish is retried by the task's own retry.
        transition(session, task.version_id, "indexing", ("embedding", "indexing"))
    runtime.publisher.publish(settings.topic_index, IndexRequested(version_id=task.version_id))
    return True


def index_version(runtime: Runtime, version_id: str) -> bool:
    """Atomically make the version active (if newest), drop superseded chunks, mark ready."""
    database = runtime.database
    settings = runtime.settings
    superseded: list[tuple[str, str, str]] = []
    with database.transaction() as session:
        version = load_version(session, version_id)
        if version is None or version.status != "indexing":
            return False
        if count_unembedded(session, version_id) > 0:
            return False  # premature: the last embed batch publishes again
        active = session.one(
            "SELECT v.id::text, v.number FROM documents d"
            " LEFT JOIN document_versions v ON v.id = d.active_version_id"
            " WHERE d.id = CAST(:d AS uuid) FOR UPDATE OF d",
            d=version.document_id,
        )
        if active is None:
            return False
        active_id, active_number = active
        if active_id is not None and active_number > version.number:
            # A newer version went live first: this one is already stale.
            outcome = "superseded"
            stale_ids = [version_id]
        else:
            outcome = "ready"
            # Every older version: the conditional transition below skips finished ones.
            stale_ids = [
                row[0]
                for row in session.run(
                    "SELECT id::text FROM document_versions WHERE document_id = CAST(:d AS uuid)"
                    " AND number < :n",
                    d=version.document_id,
                    n=version.number,
                )
            ]
            session.run(
                "UPDATE documents SET active_version_id = CAST(:v AS uuid), updated_at = now()"
                " WHERE id = CAST(:d AS uuid)",
                v=version_id,
                d=version.document_id,
            )
            transition(session, version_id, "ready", ("indexing",))
        for stale_id in stale_ids:
            stale = transition(session, stale_id, "superseded", ("ready", *IN_PROGRESS))
            session.run("DELETE FROM chunks WHERE version_id = CAST(:v AS uuid)", v=stale_id)
            if stale is not None:
                superseded.append((stale.id, stale.object_bucket, stale.object_name))
    for stale_id, bucket, name in superseded:
        runtime.objects.delete(settings.work_bucket, parsed_object_name(stale_id))
        if name.startswith("_uploads/") and name != version.object_name:
            runtime.objects.delete(bucket, name)
    runtime.publisher.publish(
        settings.topic_lifecycle,
        DocumentLifecycleEvent(
            document_id=version.document_id,
            version_id=version_id,
            knowledge_base_id=version.kb_id,
            status=outcome,
        ),
    )
    return True


def fail_and_announce(runtime: Runtime, version_id: str, code: str, message: str) -> bool:
    """Fail the version (if still in progress) and publish the lifecycle event."""
    database = runtime.database
    version = fail_version(database, version_id, code, message)
    if version is None:
        return False
    log.warning(
        "version failed",
        extra={"version_id": version_id, "document_id": version.document_id, "error": message},
    )
    runtime.publisher.publish(
        runtime.settings.topic_lifecycle,
        DocumentLifecycleEvent(
            document_id=version.document_id,
            version_id=version_id,
            knowledge_base_id=version.kb_id,
            status="failed",
            error=message,
        ),
    )
    return True


def dead_letter(runtime: Runtime, version_id: str, attempts: int | None = None) -> bool:
    """Fail a version whose message ran out of delivery attempts, with its last error."""
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
