"""Deleting a document: every version, chunk, event and stored object of it."""

from __future__ import annotations

from shared.paths import parsed_object_name
from shared.runtime import Runtime


def delete_document(runtime: Runtime, document_id: str) -> bool:
    """Delete a document with every version, chunk, event and stored object.

    Objects go first: if anything fails midway, the rows still exist and the delete
    can simply be retried.
    """
    database = runtime.database
    row = database.one(
        "SELECT d.source_key, k.name FROM documents d JOIN knowledge_bases k ON k.id = d.kb_id"
        " WHERE d.id = CAST(:d AS uuid)",
        d=document_id,
    )
    if row is None:
        return False
    settings = runtime.settings
    versions = database.run(
        "SELECT id::text, object_bucket, object_name FROM document_versions"
        " WHERE document_id = CAST(:d AS uuid)",
        d=document_id,
    )
    for version_id, bucket, name in versions:
        runtime.objects.delete(settings.work_bucket, parsed_object_name(version_id))
        runtime.objects.delete(bucket, name)
    with database.transaction() as session:
        session.run("DELETE FROM chunks WHERE document_id = CAST(:d AS uuid)", d=document_id)
        session.run(
            "UPDATE documents SET active_version_id = NULL, latest_version_id = NULL"
            " WHERE id = CAST(:d AS uuid)",
            d=document_id,
        )
        session.run(
            "DELETE FROM document_versions WHERE document_id = CAST(:d AS uuid)", d=document_id
        )
        session.run(
            "DELETE FROM document_events WHERE document_id = CAST(:d AS uuid)", d=document_id
        )
        session.run("DELETE FROM documents WHERE id = CAST(:d AS uuid)", d=document_id)
    return True
