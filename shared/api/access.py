"""Resolving what a request names (knowledge bases, documents) and checking access to it."""

from __future__ import annotations

from shared import documents
from shared.auth import Action, Principal, authorize
from shared.db import Database
from shared.errors import NotFoundError
from shared.knowledge_bases import KnowledgeBase, find_knowledge_base


def require_kb(
    database: Database, ref: str, principal: Principal, action: Action = "read"
) -> KnowledgeBase:
    """The knowledge base ``ref`` (id or name) if the principal may act on it; else 404/403."""
    kb = find_knowledge_base(database, ref, principal.workspace)
    if kb is None:
        raise NotFoundError(f"knowledge base {ref!r} not found", code="knowledge_base_not_found")
    authorize(principal, action, kb.id)
    return kb


def require_document(
    database: Database, document_id: str, principal: Principal, action: Action = "read"
) -> str:
    """The document's knowledge-base id if the principal may act on it; else 404/403."""
    kb_id = documents.document_kb(database, document_id)
    if kb_id is None:
        raise NotFoundError(f"document {document_id!r} not found", code="document_not_found")
    authorize(principal, action, kb_id)
    return kb_id
