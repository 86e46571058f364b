"""Knowledge bases: create, list and resolve them (by id or by name in a workspace)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from shared.config import get_settings
from shared.db import Database
from shared.db.connection import Session
from shared.db.vector_index import ensure_vector_index
from shared.errors import ApiError
from shared.ids import is_uuid

KB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
# How questions naming something are routed (see shared/retrieval/search.py).
ROUTING_MODES = ("names", "off")


@dataclass(frozen=True)
class KnowledgeBase:
    """A knowledge base and the settings its documents are processed with."""

    id: str
    workspace_id: str
    name: str
    description: str
    embedding_model: str
    embedding_dim: int
    chunk_tokens: int
    chunk_overlap: int
    routing: str
    created_by: str
    created_at: str

    def to_json(self) -> dict[str, Any]:
        """The API representation."""
        return asdict(self)


_COLUMNS = (
    "id::text, workspace_id::text, name, description, embedding_model, embedding_dim,"
    " chunk_tokens, chunk_overlap, routing, created_by, created_at::text"
)


def ensure_workspace(session: Session, name: str) -> str:
    """Return the id of workspace ``name``, creating it if needed."""
    session.run("INSERT INTO workspaces (name) VALUES (:n) ON CONFLICT (name) DO NOTHING", n=name)
    return str(session.scalar("SELECT id::text FROM workspaces WHERE name = :n", n=name))


def resolve_dimension(model: str, dimension: int | None) -> int:
    """The embedding dimension a knowledge base using ``model`` will store."""
    from shared.embeddings import get_embedder

    try:
        return int(get_embedder(model, dimension).dimension)
    except (KeyError, ValueError) as error:
        raise ApiError(400, "invalid_embedding_model", str(error)) from error


def create_knowledge_base(
    database: Database,
    *,
    name: str,
    principal: str,
    description: str = "",
    embedding_model: str | None = None,
    embedding_dim: int | None = None,
    chunk_tokens: int | None = None,
    chunk_overlap: int | None = None,
    routing: str = "names",
    workspace: str | None = None,
) -> KnowledgeBase:
    """Create a knowledge base (409 if the name is taken in the workspace).

    ``routing`` is ``names`` (a question naming something searches only the documents
    whose profile names it) or ``off`` (every question searches every document).
    """
    settings = get_settings()
    if not KB_NAME.match(name or ""):
        raise ApiError(
            400,
            "invalid_name",
            "name must be 1-63 characters of letters, digits, '.', '_' or '-',"
            " starting with a letter or digit",
        )
    model = embedding_model or settings.default_embedding_model
    dimension = resolve_dimension(model, embedding_dim)
    tokens = chunk_tokens or settings.chunk_tokens
    overlap = settings.chunk_overlap if chunk_overlap is None else chunk_overlap
    if not 16 <= tokens <= 8192 or not 0 <= overlap < tokens:
        raise ApiError(
            400,
            "invalid_chunking",
            "chunk_tokens must be 16..8192 and 0 <= chunk_overlap < chunk_tokens",
        )
    if routing not in ROUTING_MODES:
        raise ApiError(400, "invalid_routing", f"routing must be one of {', '.join(ROUTING_MODES)}")
    with database.transaction() as session:
        workspace_id = ensure_workspace(session, workspace or settings.default_workspace)
        row = session.one(
            "INSERT INTO knowledge_bases (workspace_id, name, description, embedding_model,"
            " embedding_dim, chunk_tokens, chunk_overlap, routing, created_by)"
            " VALUES (CAST(:w AS uuid), :n, :d, :m, :dim, :t, :o, :r, :p)"
            " ON CONFLICT (workspace_id, name) DO NOTHING RETURNING id::text",
            w=workspace_id,
            n=name,
            d=description,
            m=model,
            dim=dimension,
            t=tokens,
            o=overlap,
            r=routing,
            p=principal,
        )
        if row is None:
            raise ApiError(409, "already_exists", f"knowledge base {name!r} already exists")
        ensure_vector_index(session, dimension)
    kb = get_knowledge_base(database, row[0])
    assert kb is not None
    return kb


def update_knowledge_base(
    database: Database,
    kb_id: str,
    *,
    description: str | None = None,
    routing: str | None = None,
) -> KnowledgeBase | None:
    """Change the settings that apply to questions, not to stored chunks.

    Model and chunking are fixed once documents are processed with them; description and
    routing take effect with the next question. Returns None if the knowledge base is gone.
    """
    if routing is not None and routing not in ROUTING_MODES:
        raise ApiError(400, "invalid_routing", f"routing must be one of {', '.join(ROUTING_MODES)}")
    database.run(
        "UPDATE knowledge_bases SET description = coalesce(:d, description),"
        " routing = coalesce(:r, routing) WHERE id = CAST(:id AS uuid)",
        d=description,
        r=routing,
        id=kb_id,
    )
    return get_knowledge_base(database, kb_id)


def get_knowledge_base(database: Database | Session, kb_id: str) -> KnowledgeBase | None:
    """Return a knowledge base by id, or None."""
    if not is_uuid(kb_id):
        return None
    row = database.one(
        f"SELECT {_COLUMNS} FROM knowledge_bases WHERE id = CAST(:id AS uuid)", id=kb_id
    )
    return KnowledgeBase(*row) if row else None


def find_knowledge_base(
    database: Database | Session, ref: str, workspace: str | None = None
) -> KnowledgeBase | None:
    """Resolve ``ref`` as a knowledge-base id, else as a name, inside the workspace.

    A knowledge base of another workspace is not found, whether named or given by id.
    """
    in_workspace = " AND workspace_id = (SELECT id FROM workspaces WHERE name = :w)"
    w = workspace or get_settings().default_workspace
    row = None
    if is_uuid(ref):
        row = database.one(
            f"SELECT {_COLUMNS} FROM knowledge_bases WHERE id = CAST(:ref AS uuid){in_workspace}",
            ref=ref,
            w=w,
        )
    if row is None:
        row = database.one(
            f"SELECT {_COLUMNS} FROM knowledge_bases WHERE name = :ref{in_workspace}", ref=ref, w=w
        )
    return KnowledgeBase(*row) if row else None


def list_knowledge_bases(database: Database, workspace: str | None = None) -> list[KnowledgeBase]:
    """Every knowledge base of the workspace, by name."""
    rows = database.run(
        f"SELECT {_COLUMNS} FROM knowledge_bases WHERE workspace_id ="
        " (SELECT id FROM workspaces WHERE name = :w) ORDER BY name",
        w=workspace or get_settings().default_workspace,
    )
    return [KnowledgeBase(*row) for row in rows]
