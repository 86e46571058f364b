"""Analytics of one workspace over a time range, computed in SQL.

Reads ``documents``, ``document_versions``, ``chunks``, ``chat_sessions``,
``chat_turns`` and ``turn_feedback``; writes nothing. Every statement is scoped by a
:class:`Window`: the workspace (by name, joined through the session that asked),
the range ``[since, until)``, optionally one knowledge base (turns that asked it,
documents in it) and one asker (their own questions and feedback).

A question is a turn, counted when it was asked (``created_at``); feedback when it was
given (``updated_at``). Days are UTC days. Percentiles are ``percentile_cont``
(linear interpolation). A turn with no model call (nothing relevant was retrieved)
has no model and is left out of the usage by model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.auth import Principal
from shared.config import ModelPrice
from shared.db import Database
from shared.store.scope import readable_knowledge_bases_sql

# A dated snapshot of a model ("gpt-4o-mini-2024-07-18") is priced as the model.
_SNAPSHOT_SUFFIX = r"-\d{4}-\d{2}-\d{2}$"
ANSWER_EXCERPT_CHARS = 500


def _utc(column: str) -> str:
    """``column`` (a timestamptz) as ISO 8601 text in UTC, to the microsecond."""
    return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"


@dataclass(frozen=True)
class Window:
    """What an analytics statement covers.

    Attributes:
        workspace: The workspace's name.
        since: Start of the range (inclusive, timezone-aware).
        until: End of the range (exclusive, timezone-aware).
        kb_id: Only questions that asked this knowledge base, documents in it.
        asker: Only this principal's questions and the feedback they gave.
    """

    workspace: str
    since: datetime
    until: datetime
    kb_id: str | None = None
    asker: str | None = None

    def params(self) -> dict[str, Any]:
        """The statement parameters every fragment of this module names."""
        return {
            "ws": self.workspace,
            "since": self.since,
            "until": self.until,
            "kb": self.kb_id,
            "asker": self.asker,
        }


def _turns(window: Window, also: str = "") -> str:
    """``FROM`` and ``WHERE`` of the window's turns (alias ``t``, session ``s``).

    ``also`` is added to the ``FROM`` list (a lateral function of ``t``).
    """
    sql = (
        " FROM chat_turns t JOIN chat_sessions s ON s.id = t.session_id"
        f" JOIN workspaces w ON w.id = s.workspace_id AND w.name = :ws{also}"
        " WHERE t.created_at >= CAST(:since AS timestamptz)"
        " AND t.created_at < CAST(:until AS timestamptz)"
    )
    if window.kb_id is not None:
        sql += " AND CAST(:kb AS uuid) = ANY(t.kb_ids)"
    if window.asker is not None:
        sql += " AND s.principal = :asker"
    return sql


@dataclass(frozen=True)
class ContentTotals:
    """The workspace's documents now (not limited to the range, but ``added``)."""

    documents: int
    ready_documents: int
    archived_documents: int
    added_documents: int
    pages: int
    chunks: int


def content_totals(database: Database, window: Window) -> ContentTotals:
    """Documents, those with an active version, and their pages and chunks.

    Pages and chunks are those of each document's active version (what retrieval
    reads, archived documents included); ``added_documents`` were created in the range.
    """
    kb_filter = " AND d.kb_id = CAST(:kb AS uuid)" if window.kb_id is not None else ""
    found = database.record(
        ContentTotals,
        "SELECT count(*) AS documents,"
        " count(*) FILTER (WHERE d.active_version_id IS NOT NULL) AS ready_documents,"
        " count(*) FILTER (WHERE d.archived_at IS NOT NULL) AS archived_documents,"
        " count(*) FILTER (WHERE d.created_at >= CAST(:since AS timestamptz)"
        " AND d.created_at < CAST(:until AS timestamptz)) AS added_documents,"
        " coalesce(sum(v.page_count), 0)::bigint AS pages,"
        " coalesce(sum((SELECT count(*) FROM chunks c WHERE c.version_id = v.id)), 0)::bigint"
        " AS chunks"
        " FROM documents d JOIN knowledge_bases k ON k.id = d.kb_id"
        " JOIN workspaces w ON w.id = k.workspace_id AND w.name = :ws"
        " LEFT JOIN document_versions v ON v.id = d.active_version_id"
        f" WHERE true{kb_filter}",
        **window.params(),
    )
    return found or ContentTotals(0, 0, 0, 0, 0, 0)


@dataclass(frozen=True)
class DayCounts:
    """One UTC day of the range."""

    day: str
    questions: int
    answered: int
    not_in_documents: int


def questions_per_day(database: Database, window: Window) -> list[DayCounts]:
    """Every UTC day the range touches, oldest first, days without questions included."""
    return database.records(
        DayCounts,
        "WITH asked AS (SELECT (t.created_at AT TIME ZONE 'UTC')::date AS day,"
        " count(*) AS questions, count(*) FILTER (WHERE t.status = 'answered') AS answered,"
        " count(*) FILTER (WHERE t.status = 'answered' AND t.not_in_documents)"
        f" AS not_in_documents{_turns(window)} GROUP BY 1),"
        " days AS (SELECT generate_series("
        " (CAST(:since AS timestamptz) AT TIME ZONE 'UTC')::date,"
        " ((CAST(:until AS timestamptz) - interval '1 microsecond') AT TIME ZONE 'UTC')::date,"
        " interval '1 day')::date AS day)"
        " SELECT days.day::text AS day, coalesce(asked.questions, 0) AS questions,"
        " coalesce(asked.answered, 0) AS answered,"
        " coalesce(asked.not_in_documents, 0) AS not_in_documents"
        " FROM days LEFT JOIN asked ON asked.day = days.day ORDER BY days.day",
        **window.params(),
    )


@dataclass(frozen=True)
class AnswerFigures:
    """How the range's questions ended and how fast they were answered."""

    questions: int
    answered: int
    failed: int
    cancelled: int
    not_in_documents: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    first_token_p50_ms: float | None
    first_token_p95_ms: float | None


def answer_figures(database: Database, window: Window) -> AnswerFigures:
    """Counts by outcome and latency percentiles of the answered questions.

    Latency is from the question's arrival to the stored answer; time to first token
    to the first piece of the answer sent.
    """
    answered = "t.status = 'answered'"
    found = database.record(
        AnswerFigures,
        "SELECT count(*) AS questions,"
        f" count(*) FILTER (WHERE {answered}) AS answered,"
        " count(*) FILTER (WHERE t.status = 'failed') AS failed,"
        " count(*) FILTER (WHERE t.status = 'cancelled') AS cancelled,"
        f" count(*) FILTER (WHERE {answered} AND t.not_in_documents) AS not_in_documents,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY t.latency_ms)"
        f" FILTER (WHERE {answered}) AS latency_p50_ms,"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY t.latency_ms)"
        f" FILTER (WHERE {answered}) AS latency_p95_ms,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY t.first_token_ms)"
        f" FILTER (WHERE {answered}) AS first_token_p50_ms,"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY t.first_token_ms)"
        f" FILTER (WHERE {answered}) AS first_token_p95_ms"
        f"{_turns(window)}",
        **window.params(),
    )
    return found or AnswerFigures(0, 0, 0, 0, 0, None, None, None, None)


@dataclass(frozen=True)
class ModelUsage:
    """Tokens one model used in the range, and what they cost (None: no price known)."""

    model: str
    answers: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    estimated_cost_usd: float | None


def usage_by_model(
    database: Database, window: Window, prices: Mapping[str, ModelPrice]
) -> list[ModelUsage]:
    """Token sums per model (every turn that called one, failed ones too), most used first.

    Args:
        database: The database.
        window: What is counted.
        prices: USD per million prompt and completion tokens, by model name.
    """
    table = {model: {"p": price.prompt, "c": price.completion} for model, price in prices.items()}
    return database.records(
        ModelUsage,
        "WITH used AS (SELECT t.model, count(*) AS answers,"
        " sum(t.prompt_tokens)::bigint AS prompt_tokens,"
        " sum(t.completion_tokens)::bigint AS completion_tokens,"
        " sum(t.total_tokens)::bigint AS total_tokens"
        f"{_turns(window)} AND t.model IS NOT NULL AND t.model <> 'none' GROUP BY t.model)"
        " SELECT used.model, used.answers, used.prompt_tokens, used.completion_tokens,"
        " used.total_tokens, ((used.prompt_tokens * (price.value->>'p')::numeric"
        " + used.completion_tokens * (price.value->>'c')::numeric) / 1000000)::float8"
        " AS estimated_cost_usd"
        " FROM used LEFT JOIN jsonb_each(CAST(:prices AS jsonb)) price"
        " ON price.key = regexp_replace(used.model, :snapshot, '')"
        " ORDER BY used.total_tokens DESC, used.answers DESC, used.model",
        prices=json.dumps(table),
        snapshot=_SNAPSHOT_SUFFIX,
        **window.params(),
    )


@dataclass(frozen=True)
class FeedbackCounts:
    """Ratings given in the range."""

    positive: int
    negative: int


def feedback_counts(database: Database, window: Window) -> FeedbackCounts:
    """Up and down ratings given in the range (by the asker only, if the window names one).

    A rating is counted once per rater and turn (a second one replaces the first).
    """
    kb_filter = " AND CAST(:kb AS uuid) = ANY(t.kb_ids)" if window.kb_id is not None else ""
    rater = " AND f.principal = :asker" if window.asker is not None else ""
    found = database.record(
        FeedbackCounts,
        "SELECT count(*) FILTER (WHERE f.rating = 'up') AS positive,"
        " count(*) FILTER (WHERE f.rating = 'down') AS negative"
        " FROM turn_feedback f JOIN chat_turns t ON t.id = f.turn_id"
        " JOIN chat_sessions s ON s.id = t.session_id"
        " JOIN workspaces w ON w.id = s.workspace_id AND w.name = :ws"
        " WHERE f.updated_at >= CAST(:since AS timestamptz)"
        f" AND f.updated_at < CAST(:until AS timestamptz){kb_filter}{rater}",
        **window.params(),
    )
    return found or FeedbackCounts(0, 0)


@dataclass(frozen=True)
class CitedDocument:
    """A document the range's answers cited."""

    document_id: str
    knowledge_base_id: str
    title: str | None
    filename: str
    citations: int
    answers: int


def most_cited_documents(
    database: Database, window: Window, reader: Principal, limit: int = 10
) -> list[CitedDocument]:
    """The documents the range's answers cited most, with their titles.

    Only documents that exist and that ``reader`` may read now are listed: a deleted
    document's citations are redacted and its row gone, so nothing of it shows.
    Ordered by citations (each ``[n]`` of an answer), then answers citing it.
    """
    return database.records(
        CitedDocument,
        # Counted per (answer, document), then per document, once (MATERIALIZED: the join
        # reads one row per cited document and never runs the counting again).
        "WITH pairs AS (SELECT t.id AS turn_id, c->>'document_id' AS document_id,"
        " count(*) AS citations"
        f"{_turns(window, ', jsonb_array_elements(t.citations) c')}"
        " AND t.status = 'answered' AND NOT coalesce((c->>'redacted')::boolean, false)"
        " GROUP BY t.id, c->>'document_id'),"
        " cited AS MATERIALIZED (SELECT document_id, sum(citations)::bigint AS citations,"
        " count(*) AS answers FROM pairs GROUP BY document_id)"
        " SELECT d.id::text AS document_id, d.kb_id::text AS knowledge_base_id, d.title,"
        " d.filename, cited.citations, cited.answers"
        " FROM cited JOIN documents d ON d.id = CAST(cited.document_id AS uuid)"
        f" WHERE d.kb_id IN ({readable_knowledge_bases_sql(reader, 'reader')})"
        " ORDER BY cited.citations DESC, cited.answers DESC, d.id LIMIT :limit",
        reader=reader.id,
        limit=limit,
        **window.params(),
    )


@dataclass(frozen=True)
class NegativeFeedback:
    """A thumbs-down with what it was about."""

    rated_at: str
    principal: str
    comment: str
    question: str
    answer_excerpt: str
    citations: list[dict[str, Any]]
    knowledge_base_ids: list[str]
    model: str | None
    asked_at: str
    turn_key: str


@dataclass(frozen=True)
class FeedbackCursor:
    """Where the previous page of negative feedback ended."""

    rated_at: str
    turn_key: str
    principal: str


def negative_feedback(
    database: Database, window: Window, after: FeedbackCursor | None, limit: int
) -> list[NegativeFeedback]:
    """Thumbs-down given in the range, newest first, a page at a time (keyset).

    ``turn_key`` (the turn's id) orders ties and resumes the next page; the API keeps
    it inside an opaque page token.
    """
    kb_filter = " AND CAST(:kb AS uuid) = ANY(t.kb_ids)" if window.kb_id is not None else ""
    page = (
        " AND (f.updated_at, f.turn_id, f.principal)"
        " < (CAST(:after_at AS timestamptz), CAST(:after_turn AS uuid), :after_principal)"
        if after is not None
        else ""
    )
    return database.records(
        NegativeFeedback,
        f"SELECT {_utc('f.updated_at')} AS rated_at, f.principal, f.comment, t.question,"
        f" left(t.answer, {ANSWER_EXCERPT_CHARS}) AS answer_excerpt, t.citations,"
        f" t.kb_ids::text[] AS knowledge_base_ids, t.model, {_utc('t.created_at')} AS asked_at,"
        " t.id::text AS turn_key"
        " FROM turn_feedback f JOIN chat_turns t ON t.id = f.turn_id"
        " JOIN chat_sessions s ON s.id = t.session_id"
        " JOIN workspaces w ON w.id = s.workspace_id AND w.name = :ws"
        " WHERE f.rating = 'down' AND f.updated_at >= CAST(:since AS timestamptz)"
        f" AND f.updated_at < CAST(:until AS timestamptz){kb_filter}{page}"
        " ORDER BY f.updated_at DESC, f.turn_id DESC, f.principal DESC LIMIT :limit",
        after_at=after.rated_at if after else None,
        after_turn=after.turn_key if after else None,
        after_principal=after.principal if after else None,
        limit=limit,
        **window.params(),
    )
