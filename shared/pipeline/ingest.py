"""Objects in, versions out: the first step of the pipeline.

Both the bucket's finalize events and the upload function land here, through
:func:`register_object`, which is idempotent per object generation and dedupes by
checksum against the document's latest version.

The uploads bucket's layout (operators' folders, the upload function's objects) is
described and built in :mod:`shared.paths`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared.errors import ConflictError, DomainError
from shared.ids import is_uuid
from shared.knowledge_bases import create_knowledge_base, find_knowledge_base
from shared.models import ParseRequested
from shared.paths import UPLOADS_PREFIX
from shared.pipeline.removal import delete_document
from shared.runtime import Runtime
from shared.storage import ObjectInfo
from shared.store import documents as document_store
from shared.store import versions as version_store
from shared.store.events import record_event

log = logging.getLogger(__name__)

BUCKET_PRINCIPAL = "bucket"


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
        The version, or None if the document no longer exists.
    """
    database = runtime.database
    with database.transaction() as session:
        kb_id = document_store.lock_document(session, document_id)
        if kb_id is None:
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
    # Publish whenever the version still waits for parsing, not only when it was just
    # created: if an earlier delivery committed the version but failed to publish, the
    # retry must not leave it stuck in `received`. Duplicate parse messages are no-ops.
    if registered.status == "received":
        runtime.publisher.publish(
            runtime.settings.topic_parse, ParseRequested(version_id=registered.version_id)
        )
    return registered


def ingest_finalized(runtime: Runtime, obj: ObjectInfo) -> Registered | None:
    """Handle a finalized object in the uploads bucket (a GCS ``object.finalized`` event)."""
    database = runtime.database
    if obj.name.endswith("/"):
        return None  # a "folder" placeholder object
    if obj.name.startswith(UPLOADS_PREFIX):
        document_id = obj.name[len(UPLOADS_PREFIX) :].split("/", 1)[0]
        if not is_uuid(document_id):
            log.warning("ignoring upload object with no document id: %s", obj.name)
            return None
        registered = register_object(runtime, document_id, obj)
        if registered is None:
            # An upload for a document deleted meanwhile (a signed URL used late): the
            # object belongs to nothing.
            runtime.objects.delete(obj.bucket, obj.name)
        return registered
    kb_ref, _, source_key = obj.name.partition("/")
    if not source_key:
        log.warning("ignoring object outside any knowledge-base folder: %s", obj.name)
        return None
    kb = find_knowledge_base(database, kb_ref, runtime.settings.default_workspace)
    if kb is None and runtime.objects.stat(obj.bucket, obj.name) is None:
        # The object is gone (its knowledge base was deleted meanwhile): a late event
        # must not bring the knowledge base back.
        log.info("ignoring event for a deleted object: %s", obj.name)
        return None
    if kb is None:
        try:
            kb = create_knowledge_base(
                database, runtime.settings, name=kb_ref, principal=BUCKET_PRINCIPAL
            )
        except ConflictError:
            # Created meanwhile by a concurrent event for the same folder.
            kb = find_knowledge_base(database, kb_ref, runtime.settings.default_workspace)
            assert kb is not None
        except DomainError as error:
            log.warning("cannot create knowledge base %r for %s: %s", kb_ref, obj.name, error)
            return None
    filename = source_key.rsplit("/", 1)[-1]
    document_id = document_store.ensure_document(
        database, kb.id, source_key, filename, BUCKET_PRINCIPAL
    )
    return register_object(runtime, document_id, obj)


def ingest_deleted(runtime: Runtime, bucket: str, name: str) -> str | None:
    """Handle a deleted object: delete its document unless the object was only replaced.

    GCS also reports ``deleted`` for the old generation when an object is overwritten, so
    the document goes only if no live object remains at that name.

    Returns:
        The id of the deleted document, if one was deleted.
    """
    database = runtime.database
    if name.startswith(UPLOADS_PREFIX) or "/" not in name:
        return None
    if runtime.objects.stat(bucket, name) is not None:
        return None
    kb_ref, _, source_key = name.partition("/")
    kb = find_knowledge_base(database, kb_ref, runtime.settings.default_workspace)
    if kb is None:
        return None
    document_id = document_store.find_document_id(database, kb.id, source_key)
    if document_id is None:
        return None
    delete_document(runtime, document_id)
    return document_id
