"""Which version of a document readers see: activation and approval.

A version that finished indexing becomes the document's active version right away
(:func:`activate_version`, from the index step), unless its knowledge base requires
approval: then it waits in ``awaiting_approval`` and the version active before keeps
answering until an editor approves it (:func:`approve_version`), which activates it the
same way. ``documents.active_version_id`` therefore only ever names an approved version,
and the retrieval scope (``shared.store.scope``) shows active versions only.

Both paths are conditional transitions under the document's row lock: a redelivered
index message or a second approval finds the version past the state it needs and
changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.db import Session
from shared.errors import ConflictError, NotFoundError
from shared.paths import is_upload_object, parsed_object_name
from shared.pipeline.outbox import record_document_event, relay_after_commit
from shared.pipeline.versions import IN_PROGRESS, transition
from shared.runtime import Runtime
from shared.store import chunks as chunk_store
from shared.store import documents as document_store
from shared.store import versions as version_store
from shared.store.events import record_event
from shared.store.versions import Version, load_version

WAITING = "awaiting_approval"


@dataclass(frozen=True)
class Superseded:
    """A version an activation superseded, and its source object."""

    id: str
    object_bucket: str
    object_name: str


def activate_version(
    session: Session, version: Version, from_status: str, approved_by: str | None
) -> list[Superseded] | None:
    """Make ``version`` the document's active one; supersede every older version.

    The older versions' chunks are deleted in the same transaction, so readers switch
    from the old chunks to the new in one commit. The caller holds the document's row
    lock (:func:`shared.store.documents.lock_active_version`).

    Args:
        session: A session inside the caller's transaction.
        version: The version to activate.
        from_status: The status it must be in (``indexing``, or ``awaiting_approval``).
        approved_by: Who approved it; None where the knowledge base needs no approval.

    Returns:
        The versions superseded now, or None if ``version`` was not in ``from_status``
        (a redelivery: nothing changed).
    """
    moved = transition(session, version.id, "ready", (from_status,))
    if moved is None:
        return None
    document_store.set_active_version(session, version.document_id, version.id)
    version_store.record_approval(session, version.id, approved_by)
    superseded = []
    for stale_id in version_store.older_version_ids(session, version.document_id, version.number):
        # Every older version: the conditional transition skips finished ones.
        stale = transition(session, stale_id, "superseded", ("ready", WAITING, *IN_PROGRESS))
        chunk_store.delete_version_chunks(session, stale_id)
        if stale is not None:
            superseded.append(Superseded(stale.id, stale.object_bucket, stale.object_name))
    return superseded


def drop_superseded_objects(runtime: Runtime, superseded: Sequence[Superseded], keep: str) -> None:
    """Delete the superseded versions' parsed text and uploaded objects.

    An operator's object (``<kb>/path``) is the document's source and stays; an upload
    is the version's own copy, unless the active version reads the same name (``keep``).
    """
    for stale in superseded:
        runtime.objects.delete(runtime.settings.work_bucket, parsed_object_name(stale.id))
        if is_upload_object(stale.object_name) and stale.object_name != keep:
            runtime.objects.delete(stale.object_bucket, stale.object_name)


def approve_version(
    runtime: Runtime, document_id: str, version_id: str | None, principal: str
) -> Version:
    """Approve a version awaiting approval: it becomes the document's active version.

    Args:
        runtime: The instance's runtime.
        document_id: The document.
        version_id: The version to approve; by default the newest one waiting.
        principal: Who approves (recorded on the version and in the event stream).

    Returns:
        The approved version.

    Raises:
        NotFoundError: The document, or that version of it, does not exist.
        ConflictError: Nothing awaits approval, the version does not, or a newer version
            is already active.
    """
    with runtime.database.transaction() as session:
        active = document_store.lock_active_version(session, document_id)
        if active is None:
            raise NotFoundError(f"document {document_id!r} not found", code="document_not_found")
        target = version_id or version_store.newest_waiting_version(session, document_id)
        if target is None:
            raise ConflictError(
                "no version of the document awaits approval", code="nothing_to_approve"
            )
        version = load_version(session, target, lock=True)
        if version is None or version.document_id != document_id:
            raise NotFoundError(f"version {target!r} not found", code="version_not_found")
        if version.status != WAITING:
            raise ConflictError(
                f"version {version.number} is {version.status}, not awaiting approval",
                code="not_awaiting_approval",
            )
        if active.number is not None and active.number > version.number:
            raise ConflictError(
                f"version {active.number}, newer than {version.number}, is already active",
                code="newer_version_active",
            )
        record_event(
            session,
            document_id=document_id,
            version_id=version.id,
            kb_id=version.kb_id,
            status="approved",
            detail={"approved_by": principal, "number": version.number},
        )
        superseded = activate_version(session, version, WAITING, principal)
        record_document_event(
            session,
            "document.approved",
            document_id,
            version_id=version.id,
            number=version.number,
            approved_by=principal,
        )
    # The approval and the version's ready event are in the outbox since the commit.
    relay_after_commit(runtime)
    drop_superseded_objects(runtime, superseded or [], keep=version.object_name)
    return version
