"""Deleting documents, knowledge bases and workspaces with everything they hold.

One path removes a document (:func:`delete_document`); a knowledge base's removal runs
it for each of its documents, and a workspace's runs the knowledge base's for each of
its knowledge bases. Objects go before rows: if anything fails midway, the rows still
say what is left and the delete can simply be retried.

Pipeline messages still in flight for what was deleted find their version gone and
are acknowledged without effect (each step returns early when ``load_version`` finds
nothing); a bucket event for an operator's object under a deleted knowledge base's
folder finds the object gone and does not recreate the knowledge base
(``shared.pipeline.ingest``).
"""

from __future__ import annotations

from shared.errors import ConflictError
from shared.paths import parsed_object_name
from shared.pipeline.outbox import record_document_event, relay_after_commit
from shared.runtime import Runtime
from shared.store import access as access_store
from shared.store import chunks as chunk_store
from shared.store import documents as document_store
from shared.store import events as event_store
from shared.store import history as history_store
from shared.store import knowledge_bases as kb_store
from shared.store import versions as version_store
from shared.store.knowledge_bases import KnowledgeBase

# Rounds of removal before giving up on a knowledge base or workspace that keeps
# gaining documents (uploads racing the delete); the caller may retry.
REMOVAL_ROUNDS = 5


def delete_document(runtime: Runtime, document_id: str) -> bool:
    """Delete a document with every version, chunk, event and stored object.

    Objects go first: if anything fails midway, the rows still exist and the delete
    can simply be retried. Chat history keeps no text of it: in the same transaction
    as its rows, every stored citation of it is redacted (and the answers that cited
    it; ``shared.store.history.redact_document_citations``), and the
    ``document.deleted`` event is written to the outbox.
    """
    database = runtime.database
    if not document_store.document_exists(database, document_id):
        return False
    settings = runtime.settings
    stored_objects = version_store.version_objects(database, document_id)
    for stored in stored_objects:
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
        # After the row: deleting it waits for turns being stored with citations of it.
        history_store.redact_document_citations(session, document_id)
    # A parse that wrote its text before the rows went (it checks, under the version's
    # lock, that the version still exists, and removes its own text otherwise).
    for stored in stored_objects:
        runtime.objects.delete(settings.work_bucket, parsed_object_name(stored.id))
    relay_after_commit(runtime)
    return True


def delete_knowledge_base(runtime: Runtime, kb: KnowledgeBase) -> None:
    """Delete a knowledge base: documents, objects, chat sessions, grants, requests.

    Each document goes through :func:`delete_document`; then the operators' objects
    under the knowledge base's folder; then, once no document is left, the chat
    sessions that asked it and its row (its grants and access requests cascade).

    Raises:
        ConflictError: Documents kept arriving while it was being deleted.
    """
    database = runtime.database
    for _ in range(REMOVAL_ROUNDS):
        for document_id in document_store.knowledge_base_document_ids(database, kb.id):
            delete_document(runtime, document_id)
        _delete_folder_objects(runtime, kb)
        with database.transaction() as session:
            # The lock holds off new documents (their foreign key needs the row) until
            # the row is gone.
            if not kb_store.lock_knowledge_base(session, kb.id):
                return
            if document_store.has_documents(session, kb.id):
                continue
            history_store.delete_knowledge_base_sessions(session, kb.id)
            kb_store.delete_knowledge_base_row(session, kb.id)
            return
    raise ConflictError(
        f"knowledge base {kb.name!r} kept receiving documents; try again", code="busy"
    )


def _delete_folder_objects(runtime: Runtime, kb: KnowledgeBase) -> None:
    """Delete the operators' objects under the knowledge base's folder in the uploads bucket.

    Folders (``<kb name or id>/...``) map to knowledge bases of the default workspace
    only, so only theirs are touched; objects with a version went with their documents,
    this catches those whose bucket event is still to come.
    """
    settings = runtime.settings
    if access_store.workspace_id(runtime.database, settings.default_workspace) != kb.workspace_id:
        return
    for prefix in (f"{kb.name}/", f"{kb.id}/"):
        for name in runtime.objects.list_names(settings.upload_bucket, prefix):
            runtime.objects.delete(settings.upload_bucket, name)


def delete_workspace(runtime: Runtime, workspace_id: str) -> None:
    """Delete a workspace and everything in it.

    Every knowledge base goes through :func:`delete_knowledge_base`; then, once none is
    left, the workspace's row with its members, invitations, API keys, stream tickets
    and remaining chat sessions.

    Raises:
        ConflictError: Knowledge bases kept appearing while it was being deleted.
    """
    database = runtime.database
    for _ in range(REMOVAL_ROUNDS):
        for kb_id in kb_store.workspace_knowledge_base_ids(database, workspace_id):
            kb = kb_store.get_knowledge_base(database, kb_id)
            if kb is not None:
                delete_knowledge_base(runtime, kb)
        with database.transaction() as session:
            if not access_store.lock_workspace(session, workspace_id):
                return
            if kb_store.workspace_has_knowledge_bases(session, workspace_id):
                continue
            access_store.delete_workspace_rows(session, workspace_id)
            return
    raise ConflictError("the workspace kept receiving knowledge bases; try again", code="busy")
