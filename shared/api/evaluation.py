"""Routes of evaluation runs (served by the ``answer`` function, which answers them).

``POST /v1/knowledge-bases/{kb}/evaluations`` runs a question set synchronously
(editors); runs are listed and read by anyone who may read the knowledge base, and
two runs of readable knowledge bases compare with ``GET /v1/evaluations/{a}/compare/{b}``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from werkzeug.wrappers import Request, Response

from shared.api.access import require_kb
from shared.api.http import Reply, Route, model_response, read_json, read_query
from shared.auth import Principal
from shared.db import Database
from shared.errors import InvalidInputError, NotFoundError
from shared.evaluation.compare import compare_runs
from shared.evaluation.questions import (
    MAX_CSV_BYTES,
    MAX_QUESTIONS,
    EvalQuestion,
    questions_from_json,
    read_questions,
)
from shared.evaluation.runner import RunOptions, run_evaluation
from shared.ids import is_uuid
from shared.runtime import Runtime
from shared.store import evaluations as store
from shared.store.evaluations import EvaluationRun

MAX_TOP_K = 50


class EvaluationBody(BaseModel):
    """Body of ``POST /v1/knowledge-bases/{kb}/evaluations``: ``csv`` or ``questions``."""

    model_config = ConfigDict(extra="forbid")

    csv: str | None = Field(None, max_length=MAX_CSV_BYTES)
    questions: list[dict[str, Any]] | None = Field(None, max_length=MAX_QUESTIONS)
    top_k: int | None = Field(None, ge=1, le=MAX_TOP_K)
    name: str = Field("", max_length=200)


class EvaluationsQuery(BaseModel):
    """Query of ``GET /v1/knowledge-bases/{kb}/evaluations``."""

    limit: int = Field(50, ge=1, le=200)


class RunReply(Reply):
    """An evaluation run: its settings, state and summary metrics."""

    id: str
    knowledge_base_id: str
    created_by: str
    name: str
    status: str
    settings: dict[str, Any]
    question_count: int
    summary: dict[str, Any] | None
    error: str | None
    created_at: str
    finished_at: str | None


class ResultReply(Reply):
    """One question of a run: the answer, what it cited and retrieved, its metrics."""

    ordinal: int
    question: str
    expected_sources: list[str]
    reference_answer: str | None
    tags: list[str]
    status: str
    turn_id: str | None
    answer: str | None
    cited_documents: list[str]
    retrieved_documents: list[str]
    metrics: dict[str, Any]
    error: str | None


class RunDetail(RunReply):
    """A run with its per-question results (turn ids for the one who ran it only)."""

    results: list[ResultReply]


class RunList(Reply):
    """Body of ``GET /v1/knowledge-bases/{kb}/evaluations``, newest first."""

    evaluations: list[RunReply]


class Comparison(Reply):
    """Run ``after`` against run ``before``: per question better, worse or the same."""

    before: RunReply
    after: RunReply
    verdicts: dict[str, int]
    overall: dict[str, dict[str, int | float]]
    questions: list[dict[str, Any]]


def _questions(body: EvaluationBody) -> list[EvalQuestion]:
    if (body.csv is None) == (body.questions is None):
        raise InvalidInputError(
            "give the question set as 'csv' (text) or as 'questions' (a list)",
            code="invalid_questions",
        )
    if body.csv is not None:
        return read_questions(body.csv)
    return questions_from_json(body.questions or [])


def _readable_run(database: Database, principal: Principal, run_id: str) -> EvaluationRun:
    """The run if the principal may read its knowledge base (else 404, as if absent)."""
    missing = NotFoundError(f"evaluation {run_id!r} not found", code="evaluation_not_found")
    run = store.get_run(database, run_id) if is_uuid(run_id) else None
    if run is None:
        raise missing
    try:
        require_kb(database, run.kb_id, principal)
    except NotFoundError:
        raise missing from None
    return run


def _run_json(database: Database, run: EvaluationRun, principal: Principal) -> dict[str, Any]:
    """The run with its results; the answers' turns are named to the one who ran it only.

    Other readers of the knowledge base see the questions, answers and metrics, but a
    turn is its author's chat history: its id is no one else's to follow.
    """
    body = run.to_json()
    results = [result.to_json() for result in store.list_results(database, run.id)]
    if principal.id != run.created_by:
        for result in results:
            result["turn_id"] = None
    body["results"] = results
    return body


def post_evaluation(
    runtime: Runtime, request: Request, principal: Principal, kb_id: str
) -> Response:
    """Run a question set against the knowledge base and return the stored run (201)."""
    from shared.answering.generators import get_generator

    kb = require_kb(runtime.database, kb_id, principal, "write")
    body = EvaluationBody.model_validate(read_json(request))
    questions = _questions(body)
    options = RunOptions(top_k=body.top_k or runtime.settings.answer_top_k, name=body.name)
    generator = get_generator(runtime.settings)
    run_id = run_evaluation(runtime, principal, kb, questions, options, generator)
    run = _readable_run(runtime.database, principal, run_id)
    return model_response(RunDetail, _run_json(runtime.database, run, principal), 201)


def get_evaluations(
    runtime: Runtime, request: Request, principal: Principal, kb_id: str
) -> Response:
    """The knowledge base's runs, newest first (without their per-question results)."""
    kb = require_kb(runtime.database, kb_id, principal)
    limit = read_query(request, EvaluationsQuery).limit
    runs = store.list_runs(runtime.database, kb.id, limit)
    return model_response(RunList, {"evaluations": [run.to_json() for run in runs]})


def get_evaluation(
    runtime: Runtime, request: Request, principal: Principal, run_id: str
) -> Response:
    """A run with its per-question results."""
    run = _readable_run(runtime.database, principal, run_id)
    return model_response(RunDetail, _run_json(runtime.database, run, principal))


def get_comparison(
    runtime: Runtime, request: Request, principal: Principal, run_id: str, other_id: str
) -> Response:
    """Run ``other_id`` against run ``run_id``: per question better, worse or the same."""
    database = runtime.database
    before = _readable_run(database, principal, run_id)
    after = _readable_run(database, principal, other_id)
    diff = compare_runs(
        store.list_results(database, before.id),
        store.list_results(database, after.id),
        (before.summary, after.summary),
    )
    return model_response(
        Comparison, {"before": before.to_json(), "after": after.to_json(), **diff}
    )


TAGS = ("evaluations",)

ROUTES = [
    Route(
        "POST",
        "/v1/knowledge-bases/<kb_id>/evaluations",
        post_evaluation,
        audit="evaluation.create",
        body=EvaluationBody,
        responses={201: RunDetail},
        errors=frozenset({502, 503}),
        tags=TAGS,
    ),
    Route(
        "GET",
        "/v1/knowledge-bases/<kb_id>/evaluations",
        get_evaluations,
        query=EvaluationsQuery,
        responses={200: RunList},
        tags=TAGS,
    ),
    Route("GET", "/v1/evaluations/<run_id>", get_evaluation, responses={200: RunDetail}, tags=TAGS),
    Route(
        "GET",
        "/v1/evaluations/<run_id>/compare/<other_id>",
        get_comparison,
        responses={200: Comparison},
        tags=TAGS,
    ),
]
