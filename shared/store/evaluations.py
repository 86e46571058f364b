"""Evaluation runs and their per-question results (``evaluation_runs``, ``evaluation_results``)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from shared.db import Database, Session
from shared.store.scope import ScopeSql


@dataclass(frozen=True)
class EvaluationRun:
    """One run of a question set against a knowledge base."""

    id: str
    kb_id: str
    created_by: str
    name: str
    status: str
    settings: dict[str, Any]
    question_count: int
    summary: dict[str, Any] | None
    error: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None

    def to_json(self) -> dict[str, Any]:
        """The API representation (without the per-question results)."""
        return {
            "id": self.id,
            "knowledge_base_id": self.kb_id,
            "created_by": self.created_by,
            "name": self.name,
            "status": self.status,
            "settings": self.settings,
            "question_count": self.question_count,
            "summary": self.summary,
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


@dataclass(frozen=True)
class EvaluationResult:
    """How one question of a run went."""

    ordinal: int
    question: str
    expected_sources: list[str]
    reference_answer: str | None
    tags: list[str]
    status: str
    turn_id: str | None
    answer: str | None
    cited: list[str]
    retrieved: list[str]
    metrics: dict[str, Any]
    error: str | None

    def to_json(self) -> dict[str, Any]:
        """The API representation."""
        return {
            "ordinal": self.ordinal,
            "question": self.question,
            "expected_sources": self.expected_sources,
            "reference_answer": self.reference_answer,
            "tags": self.tags,
            "status": self.status,
            "turn_id": self.turn_id,
            "answer": self.answer,
            "cited_documents": self.cited,
            "retrieved_documents": self.retrieved,
            "metrics": self.metrics,
            "error": self.error,
        }


_RUN_COLUMNS = (
    "id::text AS id, kb_id::text AS kb_id, created_by, name, status, settings,"
    " question_count, summary, error, created_at, finished_at"
)
_RESULT_COLUMNS = (
    "ordinal, question, expected_sources, reference_answer, tags, status,"
    " turn_id::text AS turn_id, answer, cited, retrieved, metrics, error"
)


def create_run(
    database: Database | Session,
    *,
    kb_id: str,
    created_by: str,
    name: str,
    settings: dict[str, Any],
    question_count: int,
) -> str:
    """Record a new run as ``running`` and return its id."""
    run_id: str = database.scalar(
        "INSERT INTO evaluation_runs (kb_id, created_by, name, settings, question_count)"
        " VALUES (CAST(:kb AS uuid), :by, :name, CAST(:settings AS jsonb), :count)"
        " RETURNING id::text",
        kb=kb_id,
        by=created_by,
        name=name,
        settings=json.dumps(settings),
        count=question_count,
    )
    return run_id


def record_result(database: Database | Session, run_id: str, result: EvaluationResult) -> None:
    """Store one question's result (again: the later write wins)."""
    database.run(
        "INSERT INTO evaluation_results (run_id, ordinal, question, expected_sources,"
        " reference_answer, tags, status, turn_id, answer, cited, retrieved, metrics, error)"
        " VALUES (CAST(:run AS uuid), :ordinal, :question, CAST(:expected AS jsonb),"
        " :reference, CAST(:tags AS jsonb), :status, CAST(:turn AS uuid), :answer,"
        " CAST(:cited AS jsonb), CAST(:retrieved AS jsonb), CAST(:metrics AS jsonb), :error)"
        " ON CONFLICT (run_id, ordinal) DO UPDATE SET status = excluded.status,"
        " turn_id = excluded.turn_id, answer = excluded.answer, cited = excluded.cited,"
        " retrieved = excluded.retrieved, metrics = excluded.metrics, error = excluded.error",
        run=run_id,
        ordinal=result.ordinal,
        question=result.question,
        expected=json.dumps(result.expected_sources),
        reference=result.reference_answer,
        tags=json.dumps(result.tags),
        status=result.status,
        turn=result.turn_id,
        answer=result.answer,
        cited=json.dumps(result.cited),
        retrieved=json.dumps(result.retrieved),
        metrics=json.dumps(result.metrics),
        error=result.error,
    )


def finish_run(
    database: Database | Session,
    run_id: str,
    *,
    status: str,
    summary: dict[str, Any] | None,
    error: str | None = None,
) -> None:
    """Record how a run ended, with its overall metrics."""
    database.run(
        "UPDATE evaluation_runs SET status = :status, summary = CAST(:summary AS jsonb),"
        " error = :error, finished_at = now() WHERE id = CAST(:id AS uuid)",
        id=run_id,
        status=status,
        summary=None if summary is None else json.dumps(summary),
        error=error,
    )


def get_run(database: Database | Session, run_id: str) -> EvaluationRun | None:
    """The run ``run_id``, if it exists."""
    return database.record(
        EvaluationRun,
        f"SELECT {_RUN_COLUMNS} FROM evaluation_runs WHERE id = CAST(:id AS uuid)",
        id=run_id,
    )


def list_runs(database: Database | Session, kb_id: str, limit: int = 50) -> list[EvaluationRun]:
    """The knowledge base's runs, newest first."""
    return database.records(
        EvaluationRun,
        f"SELECT {_RUN_COLUMNS} FROM evaluation_runs WHERE kb_id = CAST(:kb AS uuid)"
        " ORDER BY created_at DESC, id LIMIT :limit",
        kb=kb_id,
        limit=limit,
    )


def list_results(database: Database | Session, run_id: str) -> list[EvaluationResult]:
    """A run's results in question order."""
    return database.records(
        EvaluationResult,
        f"SELECT {_RESULT_COLUMNS} FROM evaluation_results WHERE run_id = CAST(:run AS uuid)"
        " ORDER BY ordinal",
        run=run_id,
    )


@dataclass(frozen=True)
class DocumentName:
    """A searchable document of a scope and its file name."""

    id: str
    filename: str


def searchable_documents(database: Database | Session, scope: ScopeSql) -> list[DocumentName]:
    """The documents a search of ``scope`` can find (active, not archived), by file name."""
    return database.records(
        DocumentName,
        f"SELECT d.id::text AS id, d.filename{scope.active_versions('d')} ORDER BY d.filename",
        **scope.params,
    )
