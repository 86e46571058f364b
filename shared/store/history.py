"""Chat history: sessions, their turns (question, answer, citations, usage) and feedback.

Owns ``chat_sessions``, ``chat_turns`` and ``turn_feedback``. A session belongs to one
principal in one workspace; every read here is scoped to them in the SQL, so a session
id alone never reveals someone else's conversation. A turn is also read only while its
owner may read every knowledge base it was asked of (checked when read, by the rule of
the retrieval scope: ``readable_knowledge_bases_sql``): a revoked grant or membership
hides the answers and citations that came from those knowledge bases.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shared.auth import Principal
from shared.db import Database, Session
from shared.ids import is_uuid
from shared.store.async_commit import ASYNC_COMMIT
from shared.store.scope import readable_knowledge_bases_sql

# Earlier exchanges a follow-up is read against (question rewriting and the prompt).
HISTORY_TURNS = 6
TITLE_CHARS = 120
# What a turn's answer becomes once a document it cited is deleted: the model wrote the
# answer from that document's passages, and no sentence of it can be proven free of them.
REDACTED_ANSWER = (
    "This answer has been removed because a document it cited was deleted."
    " Regenerate it to answer from the remaining documents."
)
# A citation of a deleted document (``c``): its number and ids stay, so the answer's
# markers and the surviving citations keep their numbers; every text of the document
# (snippet, title, file name) and its position in it go.
_REDACTED_CITATION = (
    "jsonb_build_object('n', c->'n', 'chunk_id', c->'chunk_id', 'document_id',"
    " c->'document_id', 'version_id', c->'version_id', 'kb_id', c->'kb_id',"
    " 'redacted', true, 'reason', 'document_deleted')"
)


def _redacted_citations(citations: str, keep: str) -> str:
    """SQL for the citations array ``citations``, each redacted unless ``keep`` holds.

    ``keep`` is a condition on the citation ``c``; the order of the array is kept.
    """
    return (
        f"(SELECT coalesce(jsonb_agg(CASE WHEN {keep} THEN c ELSE {_REDACTED_CITATION} END"
        f" ORDER BY o), '[]'::jsonb) FROM jsonb_array_elements({citations})"
        " WITH ORDINALITY AS e(c, o))"
    )


@dataclass(frozen=True)
class Turn:
    """A stored turn, as the API returns it."""

    id: str
    session_id: str
    number: int
    question: str
    standalone_question: str
    kb_ids: list[str]
    top_k: int
    filters: dict[str, Any]
    status: str
    answer: str
    citations: list[dict[str, Any]]
    generator: str | None
    model: str | None
    usage: dict[str, int]
    error_code: str | None
    error: str | None
    regenerated_from: str | None
    first_token_ms: int | None
    latency_ms: int | None
    created_at: str
    finished_at: str | None
    feedback: dict[str, Any] | None
    has_redacted_citations: bool

    def to_json(self) -> dict[str, Any]:
        """The API representation."""
        return dict(self.__dict__)


# Shaped as the API returns a turn: JSON columns arrive parsed, missing ones as empty.
_TURN_COLUMNS = (
    "t.id::text AS id, t.session_id::text AS session_id, t.number, t.question,"
    " t.standalone_question, coalesce(t.kb_ids::text[], '{}') AS kb_ids, t.top_k,"
    " coalesce(t.filters, '{}'::jsonb) AS filters, t.status, t.answer,"
    " coalesce(t.citations, '[]'::jsonb) AS citations, t.generator, t.model,"
    " json_build_object('prompt_tokens', t.prompt_tokens, 'completion_tokens',"
    " t.completion_tokens, 'total_tokens', t.total_tokens) AS usage,"
    " t.error_code, t.error, t.regenerated_from::text AS regenerated_from,"
    " t.first_token_ms, t.latency_ms, t.created_at::text AS created_at,"
    " t.finished_at::text AS finished_at, (SELECT json_build_object('rating', f.rating,"
    " 'comment', f.comment) FROM turn_feedback f WHERE f.turn_id = t.id"
    " ORDER BY f.updated_at DESC LIMIT 1) AS feedback, t.has_redacted_citations"
)
# Joins that keep every read inside the caller's own sessions.
_OWNED = (
    " JOIN chat_sessions s ON s.id = t.session_id"
    " JOIN workspaces w ON w.id = s.workspace_id AND w.name = :ws"
    " WHERE s.principal = :principal"
)


def _readable_turn(principal: Principal, alias: str = "t") -> str:
    """The turn ``alias`` asked only knowledge bases the principal may read now."""
    return f" AND {alias}.kb_ids <@ ARRAY({readable_knowledge_bases_sql(principal)})"


@dataclass(frozen=True)
class ExchangeRecord:
    """One earlier answered question of a session, oldest first in a history."""

    question: str
    answer: str


@dataclass(frozen=True)
class _RecentExchange:
    question: str | None
    answer: str | None


@dataclass(frozen=True)
class SessionSummary:
    """A chat session as the session list shows it."""

    id: str
    title: str
    knowledge_base_ids: list[str] | None
    created_at: str
    updated_at: str
    turn_count: int

    def to_json(self) -> dict[str, Any]:
        """The API representation."""
        body = dict(self.__dict__)
        body["knowledge_base_ids"] = list(self.knowledge_base_ids or [])
        body["turn_count"] = int(self.turn_count)
        return body


@dataclass(frozen=True)
class _NewTurn:
    session_id: str
    id: str


class TurnCitation(Protocol):
    """What a stored citation must offer (``shared.answering.types.Citation`` does)."""

    def to_json(self) -> dict[str, Any]:
        """The citation as a JSON object."""
        ...


class TurnUsage(Protocol):
    """Tokens a generation used (``shared.answering.types.Usage`` is one)."""

    @property
    def model(self) -> str:
        """The model that generated."""
        ...

    @property
    def prompt_tokens(self) -> int:
        """Tokens of the prompt."""
        ...

    @property
    def completion_tokens(self) -> int:
        """Tokens of the answer."""
        ...

    @property
    def total_tokens(self) -> int:
        """Both."""
        ...


def session_exists(database: Database, principal: Principal, session_id: str) -> bool:
    """True if ``session_id`` is one of the principal's sessions."""
    if not is_uuid(session_id):
        return False
    return bool(
        database.scalar(
            "SELECT count(*) FROM chat_sessions s JOIN workspaces w ON w.id = s.workspace_id"
            " WHERE s.id = CAST(:id AS uuid) AND w.name = :ws AND s.principal = :principal",
            id=session_id,
            ws=principal.workspace,
            principal=principal.id,
        )
    )


def session_history(
    database: Database, principal: Principal, session_id: str, limit: int = HISTORY_TURNS
) -> list[ExchangeRecord] | None:
    """The session's last answered exchanges, or None if it is not the principal's.

    :func:`session_exists` and :func:`history` in one query (a follow-up reads both).
    """
    if not is_uuid(session_id):
        return None
    rows = database.records(
        _RecentExchange,
        "SELECT recent.question, recent.answer FROM chat_sessions s"
        " JOIN workspaces w ON w.id = s.workspace_id AND w.name = :ws"
        " LEFT JOIN LATERAL ("
        "  SELECT t.number, t.question, t.answer FROM chat_turns t"
        "  WHERE t.session_id = s.id AND t.status = 'answered' AND NOT t.has_redacted_citations"
        f"{_readable_turn(principal)}"
        "  AND NOT EXISTS (SELECT 1 FROM chat_turns r WHERE r.regenerated_from = t.id"
        "                  AND r.status = 'answered')"
        "  ORDER BY t.number DESC LIMIT :limit) recent ON true"
        " WHERE s.id = CAST(:sid AS uuid) AND s.principal = :principal"
        " ORDER BY recent.number",
        ws=principal.workspace,
        principal=principal.id,
        sid=session_id,
        limit=limit,
    )
    if not rows:
        return None
    return [
        ExchangeRecord(question=row.question, answer=row.answer or "")
        for row in rows
        if row.question is not None
    ]


def list_sessions(
    database: Database, principal: Principal, limit: int = 50, offset: int = 0
) -> list[SessionSummary]:
    """The principal's sessions, most recently active first.

    A session lists only the knowledge bases the principal may still read, and counts
    only the turns they may still read.
    """
    readable = readable_knowledge_bases_sql(principal)
    return database.records(
        SessionSummary,
        "SELECT s.id::text AS id, s.title,"
        " ARRAY(SELECT kb::text FROM unnest(s.kb_ids) kb"
        f" WHERE kb IN ({readable})) AS knowledge_base_ids,"
        " s.created_at::text AS created_at, s.updated_at::text AS updated_at,"
        " (SELECT count(*) FROM chat_turns t WHERE t.session_id = s.id"
        f"{_readable_turn(principal)}) AS turn_count"
        " FROM chat_sessions s JOIN workspaces w ON w.id = s.workspace_id AND w.name = :ws"
        " WHERE s.principal = :principal ORDER BY s.updated_at DESC, s.id LIMIT :limit OFFSET :off",
        ws=principal.workspace,
        principal=principal.id,
        limit=limit,
        off=offset,
    )


def list_turns(database: Database, principal: Principal, session_id: str) -> list[Turn]:
    """The session's turns in order that the principal may read (see the module)."""
    if not is_uuid(session_id):
        return []
    return database.records(
        Turn,
        f"SELECT {_TURN_COLUMNS} FROM chat_turns t{_OWNED}{_readable_turn(principal)}"
        " AND t.session_id = CAST(:sid AS uuid) ORDER BY t.number",
        ws=principal.workspace,
        principal=principal.id,
        sid=session_id,
    )


def get_turn(database: Database, principal: Principal, turn_id: str) -> Turn | None:
    """The turn if it is in one of the principal's sessions and they may read it."""
    if not is_uuid(turn_id):
        return None
    return database.record(
        Turn,
        f"SELECT {_TURN_COLUMNS} FROM chat_turns t{_OWNED}{_readable_turn(principal)}"
        " AND t.id = CAST(:id AS uuid)",
        ws=principal.workspace,
        principal=principal.id,
        id=turn_id,
    )


# Chat-turn writes commit asynchronously (shared.store.async_commit): the commit returns
# without waiting for its WAL to reach the disk, which is most of what a small write
# costs. A database server crash may lose a session's newest turn, or leave an answer
# as 'answering'; a follow-up naming a lost session gets the 404 of any unknown
# session. Documents, knowledge bases and feedback commit synchronously.

# The columns a new turn is inserted with, after its session id and number.
_NEW_TURN = (
    " :q, :sq, CAST(:kbs AS uuid[]), :top_k, CAST(:filters AS jsonb), 'answering',"
    " CAST(:retrieved AS jsonb), CAST(:regen AS uuid)"
)
_NEW_TURN_COLUMNS = (
    "INSERT INTO chat_turns (session_id, number, question, standalone_question, kb_ids,"
    " top_k, filters, status, retrieved, regenerated_from)"
)


def _turn_params(
    question: str,
    standalone_question: str,
    kb_ids: Sequence[str],
    top_k: int,
    filters: dict[str, Any],
    retrieved: list[dict[str, Any]],
    regenerated_from: str | None,
) -> dict[str, Any]:
    return {
        "q": question,
        "sq": standalone_question,
        "kbs": list(kb_ids),
        "top_k": top_k,
        "filters": json.dumps(filters),
        "retrieved": json.dumps(retrieved),
        "regen": regenerated_from,
    }


def start_session(
    database: Database,
    principal: Principal,
    *,
    question: str,
    standalone_question: str,
    kb_ids: Sequence[str],
    top_k: int,
    filters: dict[str, Any],
    retrieved: list[dict[str, Any]],
) -> tuple[str, str]:
    """Start a session with its first turn (being answered), in one statement.

    The session's title is the question, shortened. One statement means one commit:
    a new question costs a single write before generation starts.

    Returns:
        The session id and the turn id.
    """
    row = database.record(
        _NewTurn,
        f"WITH {ASYNC_COMMIT}, new_session AS (INSERT INTO chat_sessions (workspace_id,"
        " principal, title, kb_ids) SELECT id, :principal, :title, CAST(:kbs AS uuid[])"
        " FROM workspaces WHERE name = :ws RETURNING id)"
        f" {_NEW_TURN_COLUMNS} SELECT new_session.id, 1,{_NEW_TURN}"
        " FROM new_session, async_commit"
        " RETURNING session_id::text AS session_id, id::text AS id",
        principal=principal.id,
        title=" ".join(question.split())[:TITLE_CHARS],
        ws=principal.workspace,
        **_turn_params(question, standalone_question, kb_ids, top_k, filters, retrieved, None),
    )
    if row is None:
        raise RuntimeError(f"workspace {principal.workspace!r} does not exist")
    return row.session_id, row.id


def start_turn(
    database: Database,
    *,
    session_id: str,
    question: str,
    standalone_question: str,
    kb_ids: Sequence[str],
    top_k: int,
    filters: dict[str, Any],
    retrieved: list[dict[str, Any]],
    regenerated_from: str | None = None,
) -> str:
    """Record a turn of an existing session being answered; returns its id.

    Numbers are per session, in order, and never collide. Usually one statement does
    it all: it touches the session (locking its row) and inserts the turn numbered
    after the session's last one. If a concurrent question of the same session got
    that number first (the unique key ``(session_id, number)``), the insert does
    nothing and the turn is numbered again in a transaction that holds the session's
    row lock before it reads the last number, so it sees every turn committed before.
    """
    params = _turn_params(
        question, standalone_question, kb_ids, top_k, filters, retrieved, regenerated_from
    )
    turn_id = database.scalar(
        f"WITH {ASYNC_COMMIT}, touched AS (UPDATE chat_sessions SET updated_at = now()"
        " WHERE id = CAST(:sid AS uuid) RETURNING id)"
        f" {_NEW_TURN_COLUMNS} SELECT touched.id, (SELECT coalesce(max(t.number), 0) + 1"
        f" FROM chat_turns t WHERE t.session_id = touched.id),{_NEW_TURN}"
        " FROM touched, async_commit"
        " ON CONFLICT (session_id, number) DO NOTHING RETURNING id::text",
        sid=session_id,
        **params,
    )
    if turn_id is not None:
        return str(turn_id)
    with database.transaction() as session:
        session.run("SET LOCAL synchronous_commit = off")  # see ASYNC_COMMIT
        touched = session.scalar(
            "UPDATE chat_sessions SET updated_at = now() WHERE id = CAST(:sid AS uuid)"
            " RETURNING id",
            sid=session_id,
        )
        if touched is None:
            raise RuntimeError(f"session {session_id} does not exist")
        return str(
            session.scalar(
                f"{_NEW_TURN_COLUMNS} SELECT CAST(:sid AS uuid), coalesce(max(number), 0) + 1,"
                f"{_NEW_TURN} FROM chat_turns WHERE session_id = CAST(:sid AS uuid)"
                " RETURNING id::text",
                sid=session_id,
                **params,
            )
        )


def finish_turn(
    database: Database,
    turn_id: str,
    *,
    status: str,
    answer: str,
    citations: Sequence[TurnCitation],
    usage: TurnUsage | None,
    generator: str | None,
    first_token_ms: int | None,
    latency_ms: int,
    error_code: str | None = None,
    error: str | None = None,
    not_in_documents: bool = False,
) -> None:
    """Store how a turn ended: answered, failed or cancelled (a client that went away).

    ``not_in_documents`` records that the answer said the documents do not hold one
    (analytics count it). Committed asynchronously, as the turn was started (see
    ``ASYNC_COMMIT``).
    """
    cited = [citation.to_json() for citation in citations]
    documents = sorted({str(citation["document_id"]) for citation in cited})
    # The cited documents are share-locked while the turn is stored: a delete that
    # started first has committed (and they read as gone here, so their citations are
    # redacted now), and one that starts later waits for this commit, then redacts them.
    database.run(
        f"WITH {ASYNC_COMMIT}, alive AS (SELECT id::text AS id FROM documents"
        " WHERE id = ANY(CAST(:docs AS uuid[])) FOR KEY SHARE),"
        " gone AS (SELECT (SELECT count(*) FROM alive) < :ndocs AS missing)"
        " UPDATE chat_turns t SET status = :status,"
        " answer = CASE WHEN gone.missing THEN :redacted ELSE :answer END,"
        " standalone_question = CASE WHEN gone.missing THEN t.question"
        " ELSE t.standalone_question END,"
        " citations = "
        + _redacted_citations(
            "CAST(:citations AS jsonb)", "c->>'document_id' IN (SELECT id FROM alive)"
        )
        + ", has_redacted_citations = gone.missing, generator = :generator, model = :model,"
        " prompt_tokens = :pt, completion_tokens = :ct, total_tokens = :tt,"
        " error_code = :error_code, error = :error, first_token_ms = :ftm,"
        " latency_ms = :lat, not_in_documents = :nid, finished_at = now()"
        " FROM async_commit, gone"
        " WHERE t.id = CAST(:id AS uuid) AND t.status = 'answering'",
        id=turn_id,
        status=status,
        answer=answer,
        redacted=REDACTED_ANSWER,
        citations=json.dumps(cited),
        docs=documents,
        ndocs=len(documents),
        generator=generator,
        model=usage.model if usage else None,
        pt=usage.prompt_tokens if usage else 0,
        ct=usage.completion_tokens if usage else 0,
        tt=usage.total_tokens if usage else 0,
        error_code=error_code,
        error=error[:2000] if error else None,
        ftm=first_token_ms,
        lat=latency_ms,
        nid=not_in_documents,
    )


def record_feedback(
    database: Database, principal: Principal, turn_id: str, rating: str, comment: str
) -> None:
    """Store (or replace) the principal's rating of a turn."""
    database.run(
        "INSERT INTO turn_feedback (turn_id, principal, rating, comment)"
        " VALUES (CAST(:id AS uuid), :principal, :rating, :comment)"
        " ON CONFLICT (turn_id, principal) DO UPDATE SET rating = excluded.rating,"
        " comment = excluded.comment, updated_at = now()",
        id=turn_id,
        principal=principal.id,
        rating=rating,
        comment=comment,
    )


def delete_knowledge_base_sessions(session: Session, kb_id: str) -> None:
    """Delete every chat session that asked the knowledge base, with its turns and feedback.

    A session that also asked other knowledge bases goes whole: its answers cite the
    deleted one's documents, and a history with holes in it would mislead follow-ups.
    """
    session.run(
        "DELETE FROM chat_sessions s WHERE CAST(:k AS uuid) = ANY(s.kb_ids)"
        " OR EXISTS (SELECT 1 FROM chat_turns t WHERE t.session_id = s.id"
        " AND CAST(:k AS uuid) = ANY(t.kb_ids))",
        k=kb_id,
    )


def redact_document_citations(session: Session, document_id: str) -> int:
    """Redact every stored trace of a deleted document's text in chat history.

    Run in the delete's transaction, after the document's row is deleted (that waits
    for turns being stored with citations of it, see :func:`finish_turn`). Turns that
    cited the document keep their citations' numbers, each of the document's citation
    loses its text and is marked ``{"redacted": true, "reason": "document_deleted"}``,
    the answer becomes :data:`REDACTED_ANSWER` and the standalone question (a rewrite
    that may quote earlier answers) the question as asked. Unfinished turns (failed,
    cancelled) that retrieved the document lose the partial answer they kept.
    Idempotent.

    Returns:
        How many turns had cited the document.
    """
    cites = "t.citations @> jsonb_build_array(jsonb_build_object('document_id', CAST(:d AS text)))"
    redacted = session.scalar(
        "WITH changed AS (UPDATE chat_turns t SET citations = "
        + _redacted_citations("t.citations", "c->>'document_id' IS DISTINCT FROM :d")
        + ", answer = :redacted, standalone_question = t.question,"
        f" has_redacted_citations = true WHERE {cites} RETURNING 1)"
        " SELECT count(*) FROM changed",
        d=document_id,
        redacted=REDACTED_ANSWER,
    )
    session.run(
        "UPDATE chat_turns t SET answer = '', standalone_question = t.question"
        " WHERE t.status IN ('failed', 'cancelled') AND t.answer <> ''"
        " AND t.retrieved @> jsonb_build_array(jsonb_build_object('document_id',"
        " CAST(:d AS text)))",
        d=document_id,
    )
    return int(redacted or 0)


def redacted_citation(
    database: Database, principal: Principal, chunk_id: int
) -> dict[str, Any] | None:
    """The redacted form of a citation of ``chunk_id`` in the principal's own turns, if any.

    What the citation viewer shows for a passage whose document was deleted.
    """
    if not 0 < chunk_id < 2**63:  # chunks.id is a bigint
        return None
    found = database.scalar(
        "SELECT c FROM chat_turns t"
        " JOIN chat_sessions s ON s.id = t.session_id"
        " JOIN workspaces w ON w.id = s.workspace_id AND w.name = :ws,"
        " jsonb_array_elements(t.citations) AS e(c)"
        " WHERE s.principal = :principal AND t.has_redacted_citations"
        " AND t.citations @> jsonb_build_array(jsonb_build_object('chunk_id',"
        " CAST(:chunk AS bigint), 'redacted', true))"
        " AND (c->>'chunk_id')::bigint = :chunk AND (c->>'redacted')::boolean LIMIT 1",
        ws=principal.workspace,
        principal=principal.id,
        chunk=chunk_id,
    )
    if found is None:
        return None
    return dict(found if isinstance(found, dict) else json.loads(found))
