"""One answer, from question to stored turn, as a stream of events every endpoint shares.

``POST /v1/ask`` collects the events into one JSON body, ``GET /v1/ask/stream`` sends
them as server-sent events, and regenerate replays a stored turn's question; all three
go through :func:`prepare_turn` (session, follow-up rewriting, retrieval, relevance
check, turn row) and :func:`answer_events` (generation, citation checking, storing).

Events, in order: ``start {turn_id, session_id}``, ``token {t}`` (many),
``citations {citations}``, ``done {turn_id, session_id, answer, citations,
unsupported_citations, usage}`` (each citation says whether its passage supports it);
or ``error {code, message}`` in place of the rest once something fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.answering.types import Citation, Exchange, GenerationRequest, Generator, Usage
from shared.auth import Principal
from shared.db import Database
from shared.errors import NotFoundError, UpstreamError
from shared.retrieval import Retrieval, RetrievalRequest, retrieve
from shared.retrieval.query import named_terms
from shared.retrieval.rerank import get_reranker, rerank_passages
from shared.retrieval.types import Passage
from shared.runtime import Runtime
from shared.store import history
from shared.trace_context import bind
from shared.tracing import record_error, span, start_span

log = logging.getLogger(__name__)

NOT_IN_DOCUMENTS = (
    "The documents in this knowledge base do not contain information to answer this question."
)


@dataclass(frozen=True)
class Question:
    """A validated question and where to look for its answer."""

    text: str
    kb_ids: Sequence[str]
    top_k: int = 8
    document_ids: Sequence[str] | None = None
    metadata: Mapping[str, Any] | None = None
    min_similarity: float | None = None
    session_id: str | None = None

    def filters(self) -> dict[str, Any]:
        """The filters as stored with the turn (and replayed by regenerate)."""
        stored: dict[str, Any] = {}
        if self.document_ids is not None:
            stored["document_ids"] = list(self.document_ids)
        if self.metadata:
            stored["metadata"] = dict(self.metadata)
        if self.min_similarity is not None:
            stored["min_similarity"] = self.min_similarity
        return stored


@dataclass
class PreparedTurn:
    """Everything decided before generation starts."""

    turn_id: str
    session_id: str
    question: str
    standalone_question: str
    passages: list[Passage]
    history: list[Exchange]
    retrieval: Retrieval
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Event:
    """One answering event: its name and JSON payload."""

    name: str
    data: dict[str, Any]


def retrieve_for(runtime: Runtime, principal: Principal, question: Question) -> Retrieval:
    """Hybrid retrieval for ``question`` inside the principal's scope.

    With reranking configured (``Settings.rerank``), the reranker orders the fused
    candidates and the best ``top_k`` are kept; on any failure, the fused order.

    Args:
        runtime: The instance's runtime (its database is searched).
        principal: The caller; only their workspace is searched.
        question: The question and its filters.
    """
    settings = runtime.settings
    reranker = get_reranker(settings)
    found = retrieve(
        runtime.database,
        RetrievalRequest(
            query=question.text,
            kb_ids=question.kb_ids,
            workspace=principal.workspace,
            # A reranker orders more candidates than the answer keeps.
            top_k=max(question.top_k, settings.rerank_candidates)
            if reranker is not None
            else question.top_k,
            document_ids=question.document_ids,
            metadata=question.metadata,
            min_similarity=question.min_similarity,
            reader=principal.id,
            granted_only=not principal.reads_every_kb,
        ),
    )
    if reranker is not None:
        found.passages, found.reranked = rerank_passages(
            reranker, question.text, found.passages, question.top_k
        )
    return found


def prepare_turn(
    runtime: Runtime,
    principal: Principal,
    question: Question,
    *,
    regenerated_from: str | None = None,
    conversation: Sequence[Exchange] = (),
) -> PreparedTurn:
    """Continue the session (or start one), rewrite a follow-up, retrieve, record the turn.

    A new session is created together with its first turn, after retrieval, in one
    statement: a first question writes once before generation starts.

    Args:
        runtime: The instance's runtime.
        principal: The caller.
        question: The validated question.
        regenerated_from: The turn this one answers again, if any.
        conversation: Earlier exchanges the client sent itself (a stateless client
            such as an OpenAI-compatible one resends the whole conversation); used
            when ``question`` names no session, and never stored as turns.

    Raises:
        NotFoundError: ``session_id`` is not one of the principal's sessions.
    """
    from shared.answering.rewrite import rewrite_question

    database = runtime.database
    earlier: list[Exchange] = list(conversation)
    if question.session_id is not None:
        with span("ragline.history.read"):
            found = history.session_history(database, principal, question.session_id)
        if found is None:
            raise NotFoundError(
                f"session {question.session_id!r} not found", code="session_not_found"
            )
        earlier = [Exchange(question=past.question, answer=past.answer) for past in found]
    standalone = question.text
    if earlier:
        with span("ragline.rewrite"):
            standalone = rewrite_question(question.text, earlier, settings=runtime.settings)
    retrieval = retrieve_for(
        runtime,
        principal,
        Question(
            text=standalone,
            kb_ids=question.kb_ids,
            top_k=question.top_k,
            document_ids=question.document_ids,
            metadata=question.metadata,
            min_similarity=question.min_similarity,
        ),
    )
    passages = retrieval.passages if is_relevant(standalone, retrieval) else []
    turn: dict[str, Any] = {
        "question": question.text,
        "standalone_question": standalone,
        "kb_ids": question.kb_ids,
        "top_k": question.top_k,
        "filters": question.filters(),
        "retrieved": [
            {"chunk_id": p.chunk_id, "document_id": p.document_id, "score": p.score}
            for p in retrieval.passages
        ],
    }
    with span("ragline.turn.start"):
        if question.session_id is None:
            session_id, turn_id = history.start_session(database, principal, **turn)
        else:
            session_id = question.session_id
            turn_id = history.start_turn(
                database, session_id=session_id, regenerated_from=regenerated_from, **turn
            )
    bind(turn_id=turn_id)
    return PreparedTurn(
        turn_id=turn_id,
        session_id=session_id,
        question=question.text,
        standalone_question=standalone,
        passages=passages,
        history=earlier,
        retrieval=retrieval,
    )


def is_relevant(question: str, retrieval: Retrieval) -> bool:
    """Whether the retrieved passages can answer ``question`` at all.

    Nothing retrieved (empty scope, or every passage under the similarity threshold) is
    irrelevant. So is a question whose names ("Tesla's revenue") appear neither in any
    document's profile (no routing happened) nor in any retrieved passage: the passages
    found are about something else, and answering from them would be a guess.
    """
    if not retrieval.passages:
        return False
    names = retrieval.names or named_terms(question)
    if not names or retrieval.routed_to:
        return True
    text = " ".join(passage.text for passage in retrieval.passages).lower()
    return any(name.lower() in text for name in names)


@dataclass
class _Draft:
    """What an answer has produced so far: kept as it is when the answer is cut short."""

    pieces: list[str] = field(default_factory=list)
    first_token_ms: int | None = None
    usage: Usage | None = None
    citations: list[Citation] = field(default_factory=list)
    generator: str = "none"

    @property
    def text(self) -> str:
        """The answer written so far."""
        return "".join(self.pieces)

    def add(self, text: str, started: float) -> Event:
        """Append ``text`` (the first piece times the first token); its token event."""
        if self.first_token_ms is None:
            self.first_token_ms = _elapsed_ms(started)
        self.pieces.append(text)
        return Event("token", {"t": text})


def answer_events(
    runtime: Runtime, prepared: PreparedTurn, generator: Generator
) -> Iterator[Event]:
    """Generate, check citations and store the turn, yielding events as they happen.

    Closing the iterator early (a client that disconnected) closes the generation, so
    the model stops writing, and stores the turn as ``cancelled`` with what was written.

    Args:
        runtime: The instance's runtime (the turn is stored in its database).
        prepared: The turn :func:`prepare_turn` recorded.
        generator: Writes the answer.

    Yields:
        The answer's events, in order.
    """
    database = runtime.database
    yield Event("start", {"turn_id": prepared.turn_id, "session_id": prepared.session_id})
    draft = _Draft()
    status = "cancelled"
    try:
        if prepared.passages:
            deadline_s = runtime.settings.answer_deadline_s
            yield from _generate(prepared, generator, draft, deadline_s)
        else:
            draft.usage = Usage(model="none")
            yield draft.add(NOT_IN_DOCUMENTS, prepared.started)
        citation_json = [citation.to_json() for citation in draft.citations]
        yield Event("citations", {"citations": citation_json})
        status = "answered"
        with span("ragline.turn.finish"):
            history.finish_turn(
                database,
                prepared.turn_id,
                status="answered",
                answer=draft.text,
                citations=draft.citations,
                usage=draft.usage,
                generator=draft.generator,
                first_token_ms=draft.first_token_ms,
                latency_ms=_elapsed_ms(prepared.started),
                # Nothing relevant retrieved, or nothing in the passages worth citing:
                # either way the answer says the documents do not hold one.
                not_in_documents=not draft.citations,
            )
        _log_finished(prepared, status, draft.first_token_ms)
        yield Event(
            "done",
            {
                "turn_id": prepared.turn_id,
                "session_id": prepared.session_id,
                "answer": draft.text,
                "citations": citation_json,
                "unsupported_citations": sum(not c.supported for c in draft.citations),
                "usage": (draft.usage or Usage(model="none")).to_json(),
            },
        )
    except GeneratorExit:
        # The consumer went away (client disconnect): keep what was written.
        if status != "answered":
            _finish_unanswered(database, prepared, "cancelled", draft)
        raise
    except Exception as error:
        code, message, retryable = _describe(error)
        if code == "answer_failed":
            log.exception("answer failed for turn %s", prepared.turn_id)
        else:
            log.warning("answer failed for turn %s: %s", prepared.turn_id, message)
        _finish_unanswered(database, prepared, "failed", draft, code, message)
        yield Event(
            "error",
            {"code": code, "message": message, "retryable": retryable, "turn_id": prepared.turn_id},
        )


def _generate(
    prepared: PreparedTurn, generator: Generator, draft: _Draft, deadline_s: float
) -> Iterator[Event]:
    """Stream the model's answer into ``draft``, yielding its token events, then cite.

    Raises:
        GenerationError: ``answer_timeout`` once ``deadline_s`` seconds have passed since
            the turn started, so the stream ends before the function's timeout does.
    """
    from shared.answering.citations import CitationFilter, build_citations

    passages = prepared.passages
    request = GenerationRequest(
        question=prepared.standalone_question, passages=passages, history=prepared.history
    )
    draft.generator = generator.kind
    with span("ragline.generation.prompt", generator=draft.generator):
        stream = generator.generate(request)
    markers = CitationFilter(range(1, len(passages) + 1))
    # Not the current span: the consumer's code runs at each yield.
    streaming = start_span("ragline.generation.stream", generator=draft.generator)
    waited = 0.0  # seconds spent waiting for the next delta: the model call
    deltas = 0
    try:
        iterator = iter(stream)
        while True:
            asked = time.perf_counter()
            try:
                delta = next(iterator)
            except StopIteration:
                break
            finally:
                waited += time.perf_counter() - asked
            deltas += 1
            _check_deadline(deadline_s, prepared.started)
            text = markers.feed(delta)
            if text:
                yield draft.add(text, prepared.started)
        tail = markers.flush()
        if tail:
            yield draft.add(tail, prepared.started)
    except Exception as error:
        record_error(streaming, error)
        raise
    finally:
        stream.close()
        draft.usage = stream.usage
        streaming.set_attribute("ragline.deltas", deltas)
        streaming.set_attribute("ragline.model_wait_ms", waited * 1000)
        streaming.end()
    # Only the passages that fit the context budget reached the model, so only they may
    # be cited.
    with span("ragline.citations"):
        draft.citations = build_citations(draft.text, passages, stream.included)


def collect(events: Iterator[Event]) -> dict[str, Any]:
    """Run an answer to its end; return the ``done`` payload or raise its error.

    Args:
        events: The events of :func:`answer_events`.

    Raises:
        UpstreamError: The model failed (retryable if trying later may work, e.g. rate
            limits; the HTTP layer answers 503 then, else 502).
    """
    for event in events:
        if event.name == "done":
            return event.data
        if event.name == "error":
            data = event.data
            raise UpstreamError(
                f"{data['message']} (turn {data.get('turn_id')})",
                code=data["code"],
                retryable=bool(data.get("retryable")),
            )
    raise RuntimeError("the answer ended without a result")


def _describe(error: Exception) -> tuple[str, str, bool]:
    """The code, message and retryability of a failure (internals never leak)."""
    from shared.answering.generators import GenerationError

    if isinstance(error, GenerationError):
        return error.code, error.message, error.retryable
    return "answer_failed", "the answer could not be generated; it has been logged", False


def _finish_unanswered(
    database: Database,
    prepared: PreparedTurn,
    status: str,
    draft: _Draft,
    code: str | None = None,
    message: str | None = None,
) -> None:
    try:
        with span("ragline.turn.finish", status=status):
            history.finish_turn(
                database,
                prepared.turn_id,
                status=status,
                answer=draft.text,
                citations=[],
                usage=draft.usage,
                generator=None,
                first_token_ms=draft.first_token_ms,
                latency_ms=_elapsed_ms(prepared.started),
                error_code=code,
                error=message,
            )
    except Exception:
        log.exception("could not record the end of turn %s", prepared.turn_id)
    _log_finished(prepared, status, draft.first_token_ms, code)


def _log_finished(
    prepared: PreparedTurn,
    outcome: str,
    first_token_ms: int | None,
    error_code: str | None = None,
) -> None:
    """One line per answer: the answer latency metric (monitoring.tf) reads it."""
    log.info(
        "answer finished",
        extra={
            "turn_id": prepared.turn_id,
            "outcome": outcome,
            "duration_ms": _elapsed_ms(prepared.started),
            "first_token_ms": first_token_ms,
            "error_code": error_code,
        },
    )


def _check_deadline(deadline_s: float, started: float) -> None:
    """End an answer that outlives its deadline, before the platform cuts the request off.

    A stream cut off by the function's timeout leaves the client with a broken connection
    and the turn unfinished; ending it here sends an ``error`` event and records the turn.
    """
    if time.monotonic() - started > deadline_s:
        from shared.answering.openai_client import GenerationError

        raise GenerationError(
            "answer_timeout",
            f"the answer took longer than {deadline_s:g} s; ask again or narrow the question",
            retryable=True,
        )


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
