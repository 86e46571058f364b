"""Workspaces and knowledge bases: the statements that create, change and find them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from shared.db import Database, Session
from shared.ids import is_uuid


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
    require_approval: bool
    created_by: str
    created_at: str

    def to_json(self) -> dict[str, Any]:
        """The API representation."""
        return asdict(self)


@dataclass(frozen=True)
class NewKnowledgeBase:
    """The validated values a knowledge base is created with."""

    name: str
    description: str
    embedding_model: str
    embedding_dim: int
    chunk_tokens: int
    chunk_overlap: int
    routing: str
    created_by: str
    require_approval: bool = False


_COLUMNS = (
    "id::text AS id, workspace_id::text AS workspace_id, name, description, embedding_model,"
    " embedding_dim, chunk_tokens, chunk_overlap, routing, require_approval, created_by,"
    " created_at::text AS created_at"
)
_IN_WORKSPACE = " AND workspace_id = (SELECT id FROM workspaces WHERE name = :w)"


def ensure_workspace(session: Session, name: str) -> str:
    """Return the id of workspace ``name``, creating it if needed."""
    session.run("INSERT INTO workspaces (name) VALUES (:n) ON CONFLICT (name) DO NOTHING", n=name)
    return str(session.scalar("SELECT id::text FROM workspaces WHERE name = :n", n=name))


def insert_knowledge_base(session: Session, workspace_id: str, new: NewKnowledgeBase) -> str | None:
    """Insert a knowledge base; return its id, or None if the name is taken there."""
    value = session.scalar(
        "INSERT INTO knowledge_bases (workspace_id, name, description, embedding_model,"
        " embedding_dim, chunk_tokens, chunk_overlap, routing, require_approval, created_by)"
        " VALUES (CAST(:w AS uuid), :n, :d, :m, :dim, :t, :o, :r, :a, :p)"
        " ON CONFLICT (workspace_id, name) DO NOTHING RETURNING id::text",
        w=workspace_id,
        n=new.name,
        d=new.description,
        m=new.embedding_model,
        dim=new.embedding_dim,
        t=new.chunk_tokens,
        o=new.chunk_overlap,
        r=new.routing,
        a=new.require_approval,
        p=new.created_by,
    )
    return None if value is None else str(value)


def update_question_settings(
    database: Database,
    kb_id: str,
    *,
    description: str | None,
    routing: str | None,
    require_approval: bool | None = None,
) -> None:
    """Set the description, routing and approval rule (None keeps the stored value)."""
    database.run(
        "UPDATE knowledge_bases SET description = coalesce(:d, description),"
        " routing = coalesce(:r, routing),"
        " require_approval = coalesce(CAST(:a AS boolean), require_approval)"
        " WHERE id = CAST(:id AS uuid)",
        d=description,
        r=routing,
        a=require_approval,
        id=kb_id,
    )


def requires_approval(session: Session, kb_id: str) -> bool:
    """Whether new versions in the knowledge base wait for an editor's approval."""
    return bool(
        session.scalar(
            "SELECT require_approval FROM knowledge_bases WHERE id = CAST(:k AS uuid)", k=kb_id
        )
    )


def lock_knowledge_base(session: Session, kb_id: str) -> bool:
    """Lock the knowledge base's row for the transaction; False if it is gone."""
    found = session.scalar(
        "SELECT 1 FROM knowledge_bases WHERE id = CAST(:k AS uuid) FOR UPDATE", k=kb_id
    )
    return found is not None


def delete_knowledge_base_row(session: Session, kb_id: str) -> None:
    """Delete the knowledge base's row; its grants and access requests go with it.

    Its documents, chat sessions and objects are removed first (``shared.pipeline.removal``).
    """
    session.run("DELETE FROM knowledge_bases WHERE id = CAST(:k AS uuid)", k=kb_id)


def workspace_knowledge_base_ids(database: Database, workspace_id: str) -> list[str]:
    """The ids of every knowledge base of the workspace."""
    return [
        str(value)
        for value in database.scalars(
            "SELECT id::text FROM knowledge_bases WHERE workspace_id = CAST(:w AS uuid)"
            " ORDER BY id",
            w=workspace_id,
        )
    ]


def get_knowledge_base(database: Database | Session, kb_id: str) -> KnowledgeBase | None:
    """Return a knowledge base by id, or None."""
    if not is_uuid(kb_id):
        return None
    return database.record(
        KnowledgeBase,
        f"SELECT {_COLUMNS} FROM knowledge_bases WHERE id = CAST(:id AS uuid)",
        id=kb_id,
    )


def find_knowledge_base(
    database: Database | Session, ref: str, workspace: str
) -> KnowledgeBase | None:
    """Resolve ``ref`` as a knowledge-base id, else as a name, inside ``workspace``.

    A knowledge base of another workspace is not found, whether named or given by id.
    """
    found = None
    if is_uuid(ref):
        found = database.record(
            KnowledgeBase,
            f"SELECT {_COLUMNS} FROM knowledge_bases WHERE id = CAST(:ref AS uuid){_IN_WORKSPACE}",
            ref=ref,
            w=workspace,
        )
    if found is None:
        found = database.record(
            KnowledgeBase,
            f"SELECT {_COLUMNS} FROM knowledge_bases WHERE name = :ref{_IN_WORKSPACE}",
            ref=ref,
            w=workspace,
        )
    return found


def list_knowledge_bases(database: Database, workspace: str) -> list[KnowledgeBase]:
    """Every knowledge base of ``workspace``, by name."""
    return database.records(
        KnowledgeBase,
        f"SELECT {_COLUMNS} FROM knowledge_bases WHERE workspace_id ="
        " (SELECT id FROM workspaces WHERE name = :w) ORDER BY name",
        w=workspace,
    )


def workspace_has_knowledge_bases(session: Session, workspace_id: str) -> bool:
    """Whether the workspace has any knowledge base."""
    found = session.scalar(
        "SELECT 1 FROM knowledge_bases WHERE workspace_id = CAST(:w AS uuid) LIMIT 1",
        w=workspace_id,
    )
    return found is not None
