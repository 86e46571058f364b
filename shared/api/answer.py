"""Routes of the ``answer`` function: ask (JSON and SSE), retrieve, sessions, turns, citations.

Input is validated before any work starts, so a bad request gets a 4xx in the API's
error format (``{"error": {"code", "message"}}``) even on the streaming endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from werkzeug.wrappers import Request, Response

from shared.answering.service import (
    Event,
    Question,
    answer_events,
    collect,
    prepare_turn,
    retrieve_for,
)
from shared.answering.token_estimate import estimate_tokens
from shared.answering.types import Exchange
from shared.api import audit
from shared.api.access import readable_knowledge_bases, reader_scope, require_kb
from shared.api.http import (
    EVENT_STREAM,
    Reply,
    Route,
    model_response,
    read_json,
    read_query,
)
from shared.api.quotas import admit_question, charge_tokens, estimate_question_tokens
from shared.auth import Principal
from shared.config import Settings
from shared.db import Database
from shared.errors import InvalidInputError, NotFoundError
from shared.filters import parse_metadata_filter
from shared.ids import is_uuid
from shared.runtime import Runtime
from shared.store import history
from shared.tracing import span

MAX_KNOWLEDGE_BASES = 10
MAX_TOP_K = 50
MAX_DOCUMENT_FILTER = 1000
SSE_HEADERS = {
    # Proxies and load balancers must pass each event on at once, not buffer the body.
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}


class Filters(BaseModel):
    """Optional narrowing of the search.

    ``metadata`` is a filter of ``shared.filters`` (bare values contained; ``eq``,
    ``in``, ``gt``/``gte``/``lt``/``lte`` on numbers or ISO dates, ``exists``),
    validated before any work starts.
    """

    model_config = ConfigDict(extra="forbid")

    document_ids: list[str] | None = Field(None, max_length=MAX_DOCUMENT_FILTER)
    metadata: dict[str, Any] | None = None
    min_similarity: float | None = Field(None, ge=-1.0, le=1.0)


class AskBody(BaseModel):
    """Body of ``POST /v1/ask`` and ``POST /v1/retrieve``."""

    model_config = ConfigDict(extra="forbid")

    knowledge_base_ids: list[str] = Field(min_length=1, max_length=MAX_KNOWLEDGE_BASES)
    question: str | None = None
    query: str | None = None  # /v1/retrieve also accepts "query"
    # Bounds checked by the handler (its own error code): documented, not validated here.
    top_k: int | None = Field(None, json_schema_extra={"minimum": 1, "maximum": MAX_TOP_K})
    filters: Filters | None = None
    session_id: str | None = None


class FeedbackBody(BaseModel):
    """Body of ``POST /v1/turns/{id}/feedback``."""

    model_config = ConfigDict(extra="forbid")

    rating: str = Field(json_schema_extra={"enum": ["up", "down"]})
    comment: str = Field("", max_length=4000)


class AskStreamQuery(BaseModel):
    """Query of ``GET /v1/ask/stream`` (a browser's ``EventSource`` sends no body)."""

    knowledge_base_id: list[str] = Field(
        min_length=1, description="Repeatable, or comma-separated ids or names."
    )
    q: str | None = Field(None, description="The question.")
    question: str | None = Field(None, description="The question (when q is absent).")
    session_id: str | None = Field(None, description="Continue this chat session.")
    top_k: int | None = Field(None, ge=1, le=MAX_TOP_K)
    document_id: list[str] | None = Field(None, description="Only these documents (repeatable).")


class SessionsQuery(BaseModel):
    """Query of ``GET /v1/sessions``."""

    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=1_000_000)


class UsageReply(Reply):
    """Tokens a generation used (zero for the extractive answerer)."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class SupportReply(Reply):
    """How well the cited passage supports the sentences citing it."""

    overlap: float
    missing_numbers: list[str]


class CitationReply(Reply):
    """A checked citation: marker ``[n]`` of the answer and the passage it points to."""

    n: int
    chunk_id: int
    document_id: str
    version_id: str
    kb_id: str
    filename: str
    title: str | None
    page_start: int | None
    page_end: int | None
    char_start: int
    char_end: int
    score: float
    snippet: str
    supported: bool = True
    support: SupportReply | None = None


class AnswerReply(Reply):
    """An answer with its checked citations (``done`` event of the stream)."""

    turn_id: str
    session_id: str
    answer: str
    citations: list[CitationReply]
    unsupported_citations: int
    usage: UsageReply


class PassageReply(Reply):
    """A retrieved passage and its scores."""

    chunk_id: int
    document_id: str
    version_id: str
    kb_id: str
    filename: str
    title: str | None
    text: str
    page_start: int | None
    page_end: int | None
    char_start: int
    char_end: int
    heading_path: list[str]
    score: float
    vector_score: float | None
    text_score: float | None


class RetrieveReply(Reply):
    """Body of ``POST /v1/retrieve``: ranked passages only."""

    query: str
    passages: list[PassageReply]
    routed_to_document_ids: list[str] | None


class FeedbackReply(Reply):
    """Body of ``POST /v1/turns/{id}/feedback``."""

    turn_id: str
    rating: str = Field(json_schema_extra={"enum": ["up", "down"]})
    comment: str


class SessionReply(Reply):
    """A chat session as the session list shows it."""

    id: str
    title: str
    knowledge_base_ids: list[str]
    created_at: str
    updated_at: str
    turn_count: int


class SessionList(Reply):
    """Body of ``GET /v1/sessions``, most recent first."""

    sessions: list[SessionReply]


class TurnReply(Reply):
    """One question and its answer in a session."""

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
    usage: dict[str, int | None]
    error_code: str | None
    error: str | None
    regenerated_from: str | None
    first_token_ms: int | None
    latency_ms: int | None
    created_at: str
    finished_at: str | None
    feedback: dict[str, Any] | None
    has_redacted_citations: bool


class TurnList(Reply):
    """Body of ``GET /v1/sessions/{id}/turns``, in order."""

    session_id: str
    turns: list[TurnReply]


class TurnCitations(Reply):
    """Body of ``GET /v1/turns/{id}/citations`` (a deleted document's are redacted)."""

    turn_id: str
    citations: list[dict[str, Any]]


class CitationViewer(Reply):
    """Where a cited passage is: pages and boxes, or the character span (or redacted)."""

    chunk_id: int
    redacted: bool = False


def question_text(settings: Settings, raw: str | None) -> str:
    """The question as asked, stripped, once it is known to fit (else 400).

    Raises:
        InvalidInputError: ``invalid_question`` (empty) or ``question_too_long``.
    """
    text = (raw or "").strip()
    if not text:
        raise InvalidInputError("question must not be empty", code="invalid_question")
    limit = settings.answer_max_question_chars
    if len(text) > limit:
        raise InvalidInputError(
            f"question is {len(text):,} characters; the limit is {limit:,}",
            code="question_too_long",
        )
    # The question must leave most of the model's context for the passages (a short
    # question in a non-Latin script can still be many tokens).
    tokens, token_limit = estimate_tokens(text), settings.answer_context_tokens // 4
    if tokens > token_limit:
        raise InvalidInputError(
            f"question is about {tokens:,} tokens; the limit is {token_limit:,}",
            code="question_too_long",
        )
    return text


def _top_k(settings: Settings, value: int | None) -> int:
    if value is None:
        return settings.answer_top_k
    if not 1 <= value <= MAX_TOP_K:
        raise InvalidInputError(
            f"top_k must be between 1 and {MAX_TOP_K}", code="invalid_parameter"
        )
    return value


def _kb_ids(database: Database, refs: Sequence[str], principal: Principal) -> list[str]:
    if not refs:
        raise InvalidInputError("knowledge_base_id is required", code="invalid_parameter")
    if len(refs) > MAX_KNOWLEDGE_BASES:
        raise InvalidInputError(
            f"at most {MAX_KNOWLEDGE_BASES} knowledge bases per question", code="invalid_parameter"
        )
    with span("ragline.knowledge_bases.resolve", knowledge_bases=len(refs)):
        return list(dict.fromkeys(require_kb(database, ref, principal).id for ref in refs))


def _document_ids(values: Sequence[str] | None) -> list[str] | None:
    if values is None:
        return None
    bad = [value for value in values if not is_uuid(value)]
    if bad:
        raise InvalidInputError(f"document id {bad[0]!r} is not a UUID", code="invalid_parameter")
    return list(values)


def _metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """The metadata filter as given, once it is known to be valid (else 400)."""
    parse_metadata_filter(value)
    return value or None


def _session_id(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not is_uuid(value):
        raise NotFoundError(f"session {value!r} not found", code="session_not_found")
    return value


def _question(runtime: Runtime, body: AskBody, principal: Principal, text: str) -> Question:
    filters = body.filters or Filters.model_validate({})
    return Question(
        text=text,
        kb_ids=_kb_ids(runtime.database, body.knowledge_base_ids, principal),
        top_k=_top_k(runtime.settings, body.top_k),
        document_ids=_document_ids(filters.document_ids),
        metadata=_metadata(filters.metadata),
        min_similarity=(
            filters.min_similarity
            if filters.min_similarity is not None
            else runtime.settings.answer_min_similarity
        ),
        session_id=_session_id(body.session_id),
    )


def _generator(settings: Settings) -> Any:
    from shared.answering.generators import get_generator

    return get_generator(settings)


def start_answer(
    runtime: Runtime,
    principal: Principal,
    question: Question,
    *,
    conversation: Sequence[Exchange] = (),
    regenerated_from: str | None = None,
) -> Iterator[Event]:
    """The one way into answering for every route that asks: admit, record the turn, stream.

    The question is admitted under the workspace's quotas (429 otherwise), and the
    model's reported usage is charged when the answer is done. The turn is prepared
    (session, retrieval, turn row) before this returns, so errors of the request
    surface as HTTP errors rather than inside a stream.

    Args:
        runtime: The instance's runtime.
        principal: The caller.
        question: The validated question.
        conversation: Earlier exchanges a stateless client sent with the question.
        regenerated_from: The turn this one answers again, if any.
    """
    _admit(runtime, principal, question)
    prepared = prepare_turn(
        runtime,
        principal,
        question,
        regenerated_from=regenerated_from,
        conversation=conversation,
    )
    return _charged(
        runtime, principal, answer_events(runtime, prepared, _generator(runtime.settings))
    )


def _sse(events: Iterator[Event]) -> Iterator[str]:
    # A comment first: some proxies hold the response until the first bytes arrive.
    yield ": ragline answer stream\n\n"
    for event in events:
        yield f"event: {event.name}\ndata: {json.dumps(event.data)}\n\n"


def _admit(runtime: Runtime, principal: Principal, question: Question) -> None:
    """Record what the question searches and admit it under the workspace's quotas."""
    audit.note(targets=question.kb_ids)
    estimated = estimate_question_tokens(
        runtime.settings, estimate_tokens(question.text), question.top_k
    )
    admit_question(runtime, principal, estimated)


def _charged(runtime: Runtime, principal: Principal, events: Iterator[Event]) -> Iterator[Event]:
    """The answer's events; the model's reported usage is charged once it is known."""
    try:
        for event in events:
            if event.name == "done":
                usage = event.data.get("usage") or {}
                charge_tokens(runtime, principal, int(usage.get("total_tokens") or 0))
            yield event
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


def _answer_response(request: Request, events: Iterator[Event]) -> Response:
    if "text/event-stream" in request.headers.get("Accept", ""):
        return Response(_sse(events), mimetype="text/event-stream", headers=SSE_HEADERS)
    return model_response(AnswerReply, collect(events))


def post_ask(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """Answer a question as JSON (or as SSE when the client accepts text/event-stream)."""
    body = AskBody.model_validate(read_json(request))
    question = _question(runtime, body, principal, question_text(runtime.settings, body.question))
    return _answer_response(request, start_answer(runtime, principal, question))


def get_ask_stream(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """Answer a question as server-sent events (for a browser ``EventSource``).

    Query: ``knowledge_base_id`` (repeatable, or comma-separated), ``q``,
    ``session_id``, ``top_k``, ``document_id`` (repeatable).
    """
    query = read_query(request, AskStreamQuery)
    refs = [ref for value in query.knowledge_base_id for ref in value.split(",") if ref.strip()]
    text = question_text(runtime.settings, query.q or query.question)
    question = Question(
        text=text,
        kb_ids=_kb_ids(runtime.database, refs, principal),
        top_k=_top_k(runtime.settings, query.top_k),
        document_ids=_document_ids(query.document_id or None),
        min_similarity=runtime.settings.answer_min_similarity,
        session_id=_session_id(query.session_id),
    )
    return Response(
        _sse(start_answer(runtime, principal, question)),
        mimetype="text/event-stream",
        headers=SSE_HEADERS,
    )


def post_retrieve(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """Ranked passages only, for callers that bring their own model."""
    body = AskBody.model_validate(read_json(request))
    text = question_text(runtime.settings, body.query or body.question)
    question = _question(runtime, body, principal, text)
    audit.note(targets=question.kb_ids)
    retrieval = retrieve_for(runtime, principal, question)
    return model_response(
        RetrieveReply,
        {
            "query": text,
            "passages": [passage.to_json() for passage in retrieval.passages],
            "routed_to_document_ids": retrieval.routed_to,
        },
    )


def _require_turn(database: Database, principal: Principal, turn_id: str) -> history.Turn:
    turn = history.get_turn(database, principal, turn_id)
    if turn is None:
        raise NotFoundError(f"turn {turn_id!r} not found", code="turn_not_found")
    return turn


def post_regenerate(
    runtime: Runtime, request: Request, principal: Principal, turn_id: str
) -> Response:
    """Answer a turn's question again (fresh retrieval) as a new turn of its session."""
    turn = _require_turn(runtime.database, principal, turn_id)
    for kb_id in turn.kb_ids:
        require_kb(runtime.database, kb_id, principal)
    filters = turn.filters
    question = Question(
        text=turn.question,
        kb_ids=turn.kb_ids,
        top_k=turn.top_k,
        document_ids=filters.get("document_ids"),
        metadata=filters.get("metadata"),
        min_similarity=filters.get("min_similarity"),
        session_id=turn.session_id,
    )
    events = start_answer(runtime, principal, question, regenerated_from=turn.id)
    return _answer_response(request, events)


def post_feedback(
    runtime: Runtime, request: Request, principal: Principal, turn_id: str
) -> Response:
    """Rate a turn up or down, with an optional comment (a second rating replaces it)."""
    turn = _require_turn(runtime.database, principal, turn_id)
    body = FeedbackBody.model_validate(read_json(request))
    if body.rating not in ("up", "down"):
        raise InvalidInputError("rating must be 'up' or 'down'", code="invalid_rating")
    history.record_feedback(runtime.database, principal, turn.id, body.rating, body.comment)
    return model_response(
        FeedbackReply, {"turn_id": turn.id, "rating": body.rating, "comment": body.comment}
    )


def get_sessions(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """The caller's chat sessions, most recent first."""
    query = read_query(request, SessionsQuery)
    sessions = history.list_sessions(runtime.database, principal, query.limit, query.offset)
    return model_response(SessionList, {"sessions": [session.to_json() for session in sessions]})


def get_session_turns(
    runtime: Runtime, request: Request, principal: Principal, session_id: str
) -> Response:
    """A session's turns in order."""
    database = runtime.database
    if not history.session_exists(database, principal, session_id):
        raise NotFoundError(f"session {session_id!r} not found", code="session_not_found")
    turns = history.list_turns(database, principal, session_id)
    return model_response(
        TurnList, {"session_id": session_id, "turns": [t.to_json() for t in turns]}
    )


def get_turn_citations(
    runtime: Runtime, request: Request, principal: Principal, turn_id: str
) -> Response:
    """The checked citations of a turn."""
    turn = _require_turn(runtime.database, principal, turn_id)
    return model_response(TurnCitations, {"turn_id": turn.id, "citations": turn.citations})


def get_citation_viewer(
    runtime: Runtime, request: Request, principal: Principal, chunk_id: str
) -> Response:
    """Where a cited passage is: PDF pages and boxes to highlight, or the character span.

    A passage of a deleted document that one of the caller's turns cited answers with
    that citation's redacted form (``redacted``, ``reason``, its ids; no text).
    """
    from shared.answering.viewer import citation_viewer

    # Only ASCII digits: str.isdigit() also accepts superscripts, which int() rejects.
    if not (chunk_id.isascii() and chunk_id.isdigit()):
        raise NotFoundError(f"passage {chunk_id!r} not found", code="citation_not_found")
    database = runtime.database
    readable = [kb.id for kb in readable_knowledge_bases(database, principal)]
    viewer = citation_viewer(database, int(chunk_id), reader_scope(principal, readable))
    if viewer is None:
        # A passage of a deleted document the caller was shown: its redacted citation.
        viewer = history.redacted_citation(database, principal, int(chunk_id))
    if viewer is None:
        raise NotFoundError(f"passage {chunk_id!r} not found", code="citation_not_found")
    return model_response(CitationViewer, viewer)


ANSWER_ERRORS = frozenset({502, 503})
TAGS = ("answers",)
HISTORY = ("history",)

ROUTES = [
    Route(
        "POST",
        "/v1/ask",
        post_ask,
        audit="knowledge_base.ask",
        body=AskBody,
        responses={200: AnswerReply},
        stream=EVENT_STREAM,
        errors=ANSWER_ERRORS,
        tags=TAGS,
    ),
    Route(
        "GET",
        "/v1/ask/stream",
        get_ask_stream,
        audit="knowledge_base.ask",
        query=AskStreamQuery,
        responses={200: EVENT_STREAM},
        tags=TAGS,
    ),
    Route(
        "POST",
        "/v1/retrieve",
        post_retrieve,
        audit="knowledge_base.retrieve",
        body=AskBody,
        responses={200: RetrieveReply},
        errors=ANSWER_ERRORS,
        tags=TAGS,
    ),
    Route(
        "POST",
        "/v1/turns/<turn_id>/regenerate",
        post_regenerate,
        audit="turn.regenerate",
        responses={200: AnswerReply},
        stream=EVENT_STREAM,
        errors=ANSWER_ERRORS,
        tags=TAGS,
    ),
    Route(
        "POST",
        "/v1/turns/<turn_id>/feedback",
        post_feedback,
        audit="turn.feedback",
        body=FeedbackBody,
        responses={200: FeedbackReply},
        tags=HISTORY,
    ),
    Route(
        "GET",
        "/v1/turns/<turn_id>/citations",
        get_turn_citations,
        responses={200: TurnCitations},
        tags=HISTORY,
    ),
    Route(
        "GET",
        "/v1/sessions",
        get_sessions,
        query=SessionsQuery,
        responses={200: SessionList},
        tags=HISTORY,
    ),
    Route(
        "GET",
        "/v1/sessions/<session_id>/turns",
        get_session_turns,
        responses={200: TurnList},
        tags=HISTORY,
    ),
    Route(
        "GET",
        "/v1/citations/<chunk_id>/viewer",
        get_citation_viewer,
        responses={200: CitationViewer},
        tags=HISTORY,
    ),
]
