"""Deleting a document: every version, chunk, event and stored object of it."""

from __future__ import annotations

from shared.paths import parsed_object_name
from shared.pipeline.outbox import record_document_event, relay_after_commit
from shared.runtime import Runtime
from shared.store import chunks as chunk_store
from shared.store import documents as document_store
from shared.store import events as event_store
from shared.store import versions as version_store


def delete_document(runtime: Runtime, document_id: str) -> bool:
    """Delete a document with every version, chunk, event and stored object.

    Objects go first: if anything fails midway, the rows still exist and the delete
    can simply be retried. The ``document.deleted`` event is written to the outbox in
    the transaction that deletes the rows.
    """
    database = runtime.database
    if not document_store.document_exists(database, document_id):
        return False
    settings = runtime.settings
    for stored in version_store.version_objects(database, document_id):
        runtime.objects.delete(settings.work_bucket, parsed_object_name(stored.id))
        runtime.objects.delete(stored.object_bucket, stored.object_name)
    with database.transaction() as session:
        # The event names the document's knowledge base: written before the row goes.
        if record_document_event(session, "document.deleted", document_id) is None:
            return False  # deleted meanwhile (a concurrent delete wrote the event)
        chunk_store.delete_document_chunks(session, document_id)
        # The document points at its versions: unset that before they go.
        document_store.clear_version_pointers(session, document_id)
        version_store.delete_document_versions(session, document_id)
        event_store.delete_document_events(session, document_id)
        document_store.delete_document_row(session, document_id)
    relay_after_commit(runtime)
    return True
