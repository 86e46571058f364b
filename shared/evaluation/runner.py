"""An evaluation run: each question answered through the product's own paths, then scored.

For every question the runner retrieves as ``POST /v1/retrieve`` does (at least ten
passages, for nDCG@10) and answers as ``POST /v1/ask`` does (a turn in the caller's
history, so each answer can be opened later), then scores both against the documents
whose file names match the question's globs. Results are stored as they come, so a
run that is cut short keeps what it measured.

A run is synchronous: it stops starting questions once the answer deadline
(``RAGLINE_ANSWER_DEADLINE_S``) has passed since it began, so it ends inside the
function's timeout; the questions not reached are ``skipped`` and the run is
``incomplete``. Larger sets are run in parts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.answering.service import Question, answer_events, collect, prepare_turn, retrieve_for
from shared.answering.types import Generator
from shared.auth import Principal
from shared.errors import DomainError
from shared.evaluation import metrics
from shared.evaluation.questions import EvalQuestion
from shared.evaluation.summary import summarize
from shared.knowledge_bases import KnowledgeBase
from shared.runtime import Runtime
from shared.store import evaluations as store
from shared.store.evaluations import DocumentName, EvaluationResult
from shared.store.scope import Scope, compile_scope

log = logging.getLogger(__name__)

NDCG_DEPTH = 10


@dataclass(frozen=True)
class RunOptions:
    """How a run answers.

    Attributes:
        top_k: Passages an answer is given (recall@k uses the same k).
        name: A label for the run.
    """

    top_k: int
    name: str = ""


@dataclass(frozen=True)
class Answered:
    """What the product returned for one question."""

    ranked: list[str]
    turn_id: str
    answer: str
    cited: list[str]
    supported: list[bool]


def _documents(runtime: Runtime, principal: Principal, kb_id: str) -> list[DocumentName]:
    scope = Scope(
        kb_ids=[kb_id],
        workspace=principal.workspace,
        reader=principal.id,
        granted_only=not principal.reads_every_kb,
    )
    return store.searchable_documents(runtime.database, compile_scope(scope))


def _ask(
    runtime: Runtime,
    principal: Principal,
    kb_id: str,
    question: EvalQuestion,
    options: RunOptions,
    generator: Generator,
) -> Answered:
    settings = runtime.settings
    retrieval = retrieve_for(
        runtime,
        principal,
        Question(
            text=question.question,
            kb_ids=[kb_id],
            top_k=max(options.top_k, NDCG_DEPTH),
            min_similarity=settings.answer_min_similarity,
        ),
    )
    asked = Question(
        text=question.question,
        kb_ids=[kb_id],
        top_k=options.top_k,
        min_similarity=settings.answer_min_similarity,
    )
    prepared = prepare_turn(runtime, principal, asked)
    done = collect(answer_events(runtime, prepared, generator))
    citations: list[dict[str, Any]] = done["citations"]
    return Answered(
        ranked=metrics.distinct(p.document_id for p in retrieval.passages),
        turn_id=done["turn_id"],
        answer=done["answer"],
        cited=metrics.distinct(c["document_id"] for c in citations),
        supported=[bool(c.get("supported", True)) for c in citations],
    )


def score(
    question: EvalQuestion, relevant: set[str], answered: Answered, top_k: int
) -> dict[str, Any]:
    """The question's metrics (None where a metric is undefined for it).

    Args:
        question: The question and its reference answer.
        relevant: Ids of the documents its globs match.
        answered: What retrieval and the answer returned.
        top_k: The k of recall@k.
    """
    cited = answered.cited
    if question.expected_sources:
        only_expected = metrics.cites_only_expected(cited, relevant)
    else:  # a question the documents cannot answer: citing anything is wrong
        only_expected = not cited
    return {
        "expected_documents": len(relevant),
        "cites_only_expected": only_expected,
        "source_precision": metrics.source_precision(cited, relevant),
        "source_recall": metrics.source_recall(cited, relevant),
        "ndcg_at_10": metrics.ndcg_at(answered.ranked, relevant, NDCG_DEPTH),
        "recall_at_k": metrics.recall_at(answered.ranked, relevant, top_k),
        "answer_f1": (
            None
            if question.reference_answer is None
            else metrics.token_f1(answered.answer, question.reference_answer)
        ),
        "citations": len(answered.supported),
        "unsupported_citations": sum(not flag for flag in answered.supported),
        "unsupported_citation_rate": metrics.unsupported_rate(answered.supported),
    }


def _result(
    ordinal: int, question: EvalQuestion, status: str, names: dict[str, str], **values: Any
) -> EvaluationResult:
    answered: Answered | None = values.get("answered")
    return EvaluationResult(
        ordinal=ordinal,
        question=question.question,
        expected_sources=list(question.expected_sources),
        reference_answer=question.reference_answer,
        tags=list(question.tags),
        status=status,
        turn_id=answered.turn_id if answered else None,
        answer=answered.answer if answered else None,
        cited=[names.get(d, d) for d in answered.cited] if answered else [],
        retrieved=[names.get(d, d) for d in answered.ranked] if answered else [],
        metrics=values.get("scores") or {},
        error=values.get("error"),
    )


def run_evaluation(
    runtime: Runtime,
    principal: Principal,
    kb: KnowledgeBase,
    questions: Sequence[EvalQuestion],
    options: RunOptions,
    generator: Generator,
) -> str:
    """Run ``questions`` against ``kb`` as ``principal`` and store the run; return its id.

    Args:
        runtime: The instance's runtime.
        principal: The caller (retrieval sees what they see; the turns are theirs).
        kb: The knowledge base evaluated (the caller may write to it).
        questions: The question set.
        options: ``top_k`` and the run's name.
        generator: Writes the answers (the answer function's own).
    """
    started = time.monotonic()
    database = runtime.database
    run_id = store.create_run(
        database,
        kb_id=kb.id,
        created_by=principal.id,
        name=options.name,
        settings={
            "top_k": options.top_k,
            "generator": generator.kind,
            "model": generator.model,
            "embedding_model": kb.embedding_model,
            "routing": kb.routing,
            "min_similarity": runtime.settings.answer_min_similarity,
        },
        question_count=len(questions),
    )
    try:
        results = _run(runtime, principal, kb.id, run_id, questions, options, generator, started)
    except Exception as error:
        log.exception("evaluation run %s failed", run_id)
        store.finish_run(database, run_id, status="failed", summary=None, error=str(error)[:500])
        raise
    status = "incomplete" if any(r.status == "skipped" for r in results) else "completed"
    store.finish_run(database, run_id, status=status, summary=summarize(results))
    return run_id


def _run(
    runtime: Runtime,
    principal: Principal,
    kb_id: str,
    run_id: str,
    questions: Sequence[EvalQuestion],
    options: RunOptions,
    generator: Generator,
    started: float,
) -> list[EvaluationResult]:
    documents = _documents(runtime, principal, kb_id)
    names = {document.id: document.filename for document in documents}
    deadline_s = runtime.settings.answer_deadline_s
    results: list[EvaluationResult] = []
    for ordinal, question in enumerate(questions, start=1):
        if time.monotonic() - started > deadline_s:
            result = _result(ordinal, question, "skipped", names)
        else:
            relevant = {
                d.id
                for d in documents
                if metrics.matches_any(d.filename, question.expected_sources)
            }
            try:
                answered = _ask(runtime, principal, kb_id, question, options, generator)
            except DomainError as error:  # the model failed: the next question may work
                result = _result(ordinal, question, "failed", names, error=error.message)
            else:
                scores = score(question, relevant, answered, options.top_k)
                result = _result(
                    ordinal, question, "answered", names, answered=answered, scores=scores
                )
        store.record_result(runtime.database, run_id, result)
        results.append(result)
    return results
