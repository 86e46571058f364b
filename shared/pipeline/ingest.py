"""Objects in, versions out: the first step of the pipeline.

Both the bucket's finalize events and the upload function land here, through
:func:`register_object`, which is idempotent per object generation and dedupes by
checksum against the document's latest version. Which knowledge base an operator's
object belongs to is decided in :mod:`shared.pipeline.placement`; an object that
belongs to none is refused and recorded (``ingest_rejections``).

The uploads bucket's layout (operators' folders, the upload function's objects) is
described and built in :mod:`shared.paths`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared import trace_context
from shared.errors import RefusedObjectError
from shared.models import ParseRequested
from shared.paths import is_upload_object, uploaded_document_id
from shared.pipeline.placement import BUCKET_PRINCIPAL, find_placement, place_object
from shared.pipeline.removal import delete_document
from shared.runtime import Runtime
from shared.storage import ObjectInfo
from shared.store import documents as document_store
from shared.store import uploads as upload_store
from shared.store import versions as version_store
from shared.store.events import record_event
from shared.store.rejections import NewRejection, record_rejection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registered:
    """The version an object maps to."""

    document_id: str
    version_id: str
    status: str
    created: bool


def register_object(
    runtime: Runtime,
    document_id: str,
    obj: ObjectInfo,
    *,
    declared_type: str | None = None,
    force: bool = False,
) -> Registered | None:
    """Create the version for ``obj`` (or find it) and start the pipeline for it.

    Idempotent: the same object generation always maps to the same version, and an
    object whose checksum equals the document's latest (non-failed) version creates no
    new version. ``force`` skips the checksum dedupe (reindex).

    Returns:
        The version, or None if the document no longer exists or the object is a signed
        upload that arrived after it expired (``shared.pipeline.expiry``).
    """
    database = runtime.database
    with database.transaction() as session:
        kb_id = document_store.lock_document(session, document_id)
        if kb_id is None:
            return None
        trace_context.bind(document_id=document_id, kb_id=kb_id)
        # A signed upload arriving after the sweeper expired it resurrects nothing.
        if upload_store.settle_arrival(session, obj.name):
            return None
        if obj.generation is not None and not force:
            same = version_store.find_by_object(session, obj.bucket, obj.name, obj.generation)
            if same is not None:
                registered = Registered(document_id, same.id, same.status, created=False)
                return _start(runtime, registered)
        latest = version_store.latest_version(session, document_id)
        if (
            not force
            and latest is not None
            and latest.status not in ("failed", "superseded")
            and obj.checksum is not None
            and latest.checksum == obj.checksum
        ):
            return _start(runtime, Registered(document_id, latest.id, latest.status, created=False))
        version_id = version_store.insert_received_version(
            session,
            document_id=document_id,
            kb_id=kb_id,
            checksum=obj.checksum,
            size_bytes=obj.size,
            declared_type=declared_type or obj.content_type,
            bucket=obj.bucket,
            name=obj.name,
            generation=None if force else obj.generation,
        )
        document_store.set_latest_version(session, document_id, version_id)
        record_event(
            session,
            document_id=document_id,
            version_id=version_id,
            kb_id=kb_id,
            status="received",
            detail={"size_bytes": obj.size, "object": f"gs://{obj.bucket}/{obj.name}"},
        )
    return _start(runtime, Registered(document_id, version_id, "received", created=True))


def _start(runtime: Runtime, registered: Registered) -> Registered:
    trace_context.bind(document_id=registered.document_id, version_id=registered.version_id)
    # Publish whenever the version still waits for parsing, not only when it was just
    # created: if an earlier delivery committed the version but failed to publish, the
    # retry must not leave it stuck in `received`. Duplicate parse messages are no-ops.
    if registered.status == "received":
        runtime.publisher.publish(
            runtime.settings.topic_parse, ParseRequested(version_id=registered.version_id)
        )
    return registered


def ingest_finalized(runtime: Runtime, obj: ObjectInfo) -> Registered | None:
    """Handle a finalized object in the uploads bucket (a GCS ``object.finalized`` event).

    An object that belongs to no knowledge base it may enter is refused: nothing is
    ingested, the refusal is recorded once per object generation, and the event is
    acknowledged.
    """
    try:
        if is_upload_object(obj.name):
            document_id = uploaded_document_id(obj.name)
            if document_id is None:
                raise RefusedObjectError(
                    "an upload object's name must start with _uploads/<document id>/",
                    code="invalid_upload_name",
                )
            registered = register_object(runtime, document_id, obj)
            if registered is None:
                # An upload for a document deleted meanwhile, or a signed upload that
                # arrived after it expired: the object belongs to nothing.
                runtime.objects.delete(obj.bucket, obj.name)
            return registered
        placement = place_object(runtime, obj)
    except RefusedObjectError as refusal:
        refuse(runtime, obj, refusal)
        return None
    if placement is None:
        return None  # a "folder" placeholder, or an object gone with its knowledge base
    document_id = document_store.ensure_document(
        runtime.database,
        placement.kb.id,
        placement.source_key,
        placement.filename,
        BUCKET_PRINCIPAL,
    )
    return register_object(runtime, document_id, obj)


def refuse(runtime: Runtime, obj: ObjectInfo, refusal: RefusedObjectError) -> bool:
    """Record that ``obj`` was refused and why (once per generation), and log it.

    Returns:
        True if recorded now, False if this generation was recorded before.
    """
    recorded = record_rejection(
        runtime.database,
        NewRejection(
            bucket=obj.bucket,
            object_name=obj.name,
            generation=obj.generation,
            reason=refusal.code,
            message=refusal.message,
            workspace=refusal.workspace,
            knowledge_base=refusal.knowledge_base,
        ),
    )
    log.warning(
        "refused gs://%s/%s: %s",
        obj.bucket,
        obj.name,
        refusal.message,
        extra={
            "bucket": obj.bucket,
            "object_name": obj.name,
            "generation": obj.generation,
            "reason": refusal.code,
            "recorded": recorded,
        },
    )
    return recorded


def ingest_deleted(runtime: Runtime, obj: ObjectInfo) -> str | None:
    """Handle a deleted object: delete its document unless the object was only replaced.

    The object is placed by the same rule as a finalized one (its path, or the metadata
    the deleted generation carried). GCS also reports ``deleted`` for the old generation
    when an object is overwritten, so the document goes only if no live object remains
    at that name.

    Returns:
        The id of the deleted document, if one was deleted.
    """
    if is_upload_object(obj.name) or runtime.objects.stat(obj.bucket, obj.name) is not None:
        return None
    try:
        placement = find_placement(runtime, obj)
    except RefusedObjectError as refusal:
        # Its finalize event was refused the same way: no document can exist.
        log.info("ignoring deletion of gs://%s/%s: %s", obj.bucket, obj.name, refusal.message)
        return None
    if placement is None:
        return None
    document_id = document_store.find_document_id(
        runtime.database, placement.kb.id, placement.source_key
    )
    if document_id is None:
        return None
    delete_document(runtime, document_id)
    return document_id
