"""Knowledge bases: the rules a new one or a change must meet, over their store."""

from __future__ import annotations

import re

from shared.config import Settings
from shared.db import Database
from shared.errors import ConflictError, InvalidInputError
from shared.store import knowledge_bases as store
from shared.store.knowledge_bases import (
    KnowledgeBase,
    find_knowledge_base,
    get_knowledge_base,
    list_knowledge_bases,
)
from shared.store.vector_index import ensure_vector_index

__all__ = [
    "KnowledgeBase",
    "create_knowledge_base",
    "find_knowledge_base",
    "get_knowledge_base",
    "list_knowledge_bases",
    "resolve_dimension",
    "update_knowledge_base",
]

KB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
# How questions naming something are routed (see shared/retrieval/search.py).
ROUTING_MODES = ("auto", "names", "off")


def resolve_dimension(model: str, dimension: int | None) -> int:
    """The embedding dimension a knowledge base using ``model`` will store."""
    from shared.embeddings import get_embedder

    try:
        return int(get_embedder(model, dimension).dimension)
    except (KeyError, ValueError) as error:
        raise InvalidInputError(str(error), code="invalid_embedding_model") from error


def create_knowledge_base(
    database: Database,
    settings: Settings,
    *,
    name: str,
    principal: str,
    description: str = "",
    embedding_model: str | None = None,
    embedding_dim: int | None = None,
    chunk_tokens: int | None = None,
    chunk_overlap: int | None = None,
    routing: str = "auto",
    workspace: str | None = None,
    require_approval: bool = False,
) -> KnowledgeBase:
    """Create a knowledge base; the settings give the defaults of what is not chosen.

    ``routing`` is ``auto`` (the default: what a question names, subjects, periods and
    file names, is weighed as evidence about its documents, narrowing only when it is
    unambiguous; ``shared.retrieval.evidence``), ``names`` (a question naming something
    searches only the documents whose profile names it) or ``off`` (every question
    searches every document).
    ``require_approval`` keeps each new version out of answers until an editor approves
    it (``shared.pipeline.approval``).

    Raises:
        InvalidInputError: A bad name, model, chunking or routing.
        ConflictError: The name is taken in the workspace.
    """
    if not KB_NAME.match(name or ""):
        raise InvalidInputError(
            "name must be 1-63 characters of letters, digits, '.', '_' or '-',"
            " starting with a letter or digit",
            code="invalid_name",
        )
    model = embedding_model or settings.default_embedding_model
    dimension = resolve_dimension(model, embedding_dim)
    tokens = chunk_tokens or settings.chunk_tokens
    overlap = settings.chunk_overlap if chunk_overlap is None else chunk_overlap
    if not 16 <= tokens <= 8192 or not 0 <= overlap < tokens:
        raise InvalidInputError(
            "chunk_tokens must be 16..8192 and 0 <= chunk_overlap < chunk_tokens",
            code="invalid_chunking",
        )
    if routing not in ROUTING_MODES:
        raise InvalidInputError(
            f"routing must be one of {', '.join(ROUTING_MODES)}", code="invalid_routing"
        )
    with database.transaction() as session:
        workspace_id = store.ensure_workspace(session, workspace or settings.default_workspace)
        kb_id = store.insert_knowledge_base(
            session,
            workspace_id,
            store.NewKnowledgeBase(
                name=name,
                description=description,
                embedding_model=model,
                embedding_dim=dimension,
                chunk_tokens=tokens,
                chunk_overlap=overlap,
                routing=routing,
                created_by=principal,
                require_approval=require_approval,
            ),
        )
        if kb_id is None:
            raise ConflictError(f"knowledge base {name!r} already exists", code="already_exists")
        ensure_vector_index(session, dimension)
    kb = store.get_knowledge_base(database, kb_id)
    assert kb is not None
    return kb


def update_knowledge_base(
    database: Database,
    kb_id: str,
    *,
    description: str | None = None,
    routing: str | None = None,
    require_approval: bool | None = None,
) -> KnowledgeBase | None:
    """Change the settings that apply to questions and new versions, not to stored chunks.

    Model and chunking are fixed once documents are processed with them; description and
    routing take effect with the next question, ``require_approval`` with the next version
    that finishes indexing (versions already waiting keep waiting until approved).
    Returns None if the knowledge base is gone.
    """
    if routing is not None and routing not in ROUTING_MODES:
        raise InvalidInputError(
            f"routing must be one of {', '.join(ROUTING_MODES)}", code="invalid_routing"
        )
    store.update_question_settings(
        database,
        kb_id,
        description=description,
        routing=routing,
        require_approval=require_approval,
    )
    return store.get_knowledge_base(database, kb_id)
