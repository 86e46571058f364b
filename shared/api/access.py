"""Resolving what a request names (knowledge bases, documents) and checking access to it.

Anything the caller may not see answers 404, exactly as if it did not exist; 403 is
kept for what they can see but may not change (a viewer deleting a document).
"""

from __future__ import annotations

from shared import documents
from shared.auth import ACTION_LEVEL, Action, Principal, kb_level
from shared.db import Database
from shared.errors import ForbiddenError, NotFoundError
from shared.knowledge_bases import KnowledgeBase, find_knowledge_base, list_knowledge_bases
from shared.store import access as store
from shared.store.scope import Scope


def _not_found(ref: str) -> NotFoundError:
    return NotFoundError(f"knowledge base {ref!r} not found", code="knowledge_base_not_found")


def kb_level_of(database: Database, principal: Principal, kb_id: str) -> int:
    """The principal's level on a knowledge base of their workspace (see ``shared.auth``)."""
    if principal.level == 0:
        return 0
    # Only members below admin can have a grant that matters.
    grant = (
        None
        if principal.level >= ACTION_LEVEL["admin"]
        else store.grant_of(database, principal.id, kb_id)
    )
    return kb_level(principal, grant)


def require_kb(
    database: Database, ref: str, principal: Principal, action: Action = "read"
) -> KnowledgeBase:
    """The knowledge base ``ref`` (id or name) if the principal may do ``action`` on it.

    Raises:
        NotFoundError: It does not exist in the principal's workspace, or they may not
            read it.
        ForbiddenError: They may read it but not do ``action``.
    """
    kb = find_knowledge_base(database, ref, principal.workspace)
    if kb is None:
        raise _not_found(ref)
    level = kb_level_of(database, principal, kb.id)
    if level == 0:
        raise _not_found(ref)
    if level < ACTION_LEVEL[action]:
        raise ForbiddenError(
            f"your access to knowledge base {kb.name!r} does not allow this", code="forbidden"
        )
    return kb


def require_document(
    database: Database, document_id: str, principal: Principal, action: Action = "read"
) -> str:
    """The document's knowledge-base id if the principal may do ``action`` on it.

    Raises:
        NotFoundError: No such document in a knowledge base the principal may read.
        ForbiddenError: They may read it but not do ``action``.
    """
    kb_id = documents.document_kb(database, document_id)
    missing = NotFoundError(f"document {document_id!r} not found", code="document_not_found")
    if kb_id is None:
        raise missing
    try:
        require_kb(database, kb_id, principal, action)
    except NotFoundError:
        raise missing from None
    return kb_id


def readable_knowledge_bases(database: Database, principal: Principal) -> list[KnowledgeBase]:
    """The knowledge bases of the principal's workspace they may read."""
    if principal.level == 0:
        return []
    kbs = list_knowledge_bases(database, principal.workspace)
    if principal.reads_every_kb:
        return kbs
    granted = set(store.granted_kb_ids(database, principal.id, principal.workspace))
    return [kb for kb in kbs if kb.id in granted]


def reader_scope(principal: Principal, kb_ids: list[str]) -> Scope:
    """The retrieval scope of ``kb_ids`` as the principal reads them."""
    return Scope(
        kb_ids=kb_ids,
        workspace=principal.workspace,
        reader=principal.id,
        granted_only=not principal.reads_every_kb,
    )
