"""Resolving what a request names (knowledge bases, documents) and checking access to it."""

from __future__ import annotations

from shared import documents
from shared.auth import Action, Principal, authorize
from shared.db import get_database
from shared.errors import ApiError
from shared.knowledge_bases import KnowledgeBase, find_knowledge_base


def require_kb(ref: str, principal: Principal, action: Action = "read") -> KnowledgeBase:
    """The knowledge base ``ref`` (id or name) if the principal may act on it; else 404/403."""
    kb = find_knowledge_base(get_database(), ref, principal.workspace)
    if kb is None:
        raise ApiError(404, "knowledge_base_not_found", f"knowledge base {ref!r} not found")
    authorize(principal, action, kb.id)
    return kb


def require_document(document_id: str, principal: Principal, action: Action = "read") -> str:
    """The document's knowledge-base id if the principal may act on it; else 404/403."""
    kb_id = documents.document_kb(get_database(), document_id)
    if kb_id is None:
        raise ApiError(404, "document_not_found", f"document {document_id!r} not found")
    authorize(principal, action, kb_id)
    return kb_id
