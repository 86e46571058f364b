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
from shared.api import audit
from shared.api.access import readable_knowledge_bases, reader_scope, require_kb
from shared.api.http import Route, int_arg, json_response, read_json
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
    top_k: int | None = None
    filters: Filters | None = None
    session_id: str | None = None


class FeedbackBody(BaseModel):
    """Body of ``POST /v1/turns/{id}/feedback``."""

    model_config = ConfigDict(extra="forbid")

    rating: str
    comment: str = Field("", max_length=4000)


def _question_text(settings: Settings, raw: str | None) -> str:
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
    return json_response(collect(events))


def post_ask(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """Answer a question as JSON (or as SSE when the client accepts text/event-stream)."""
    body = AskBody.model_validate(read_json(request))
    question = _question(runtime, body, principal, _question_text(runtime.settings, body.question))
    _admit(runtime, principal, question)
    prepared = prepare_turn(runtime, principal, question)
    events = answer_events(runtime, prepared, _generator(runtime.settings))
    return _answer_response(request, _charged(runtime, principal, events))


def get_ask_stream(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """Answer a question as server-sent events (for a browser ``EventSource``).

    Query: ``knowledge_base_id`` (repeatable, or comma-separated), ``q``,
    ``session_id``, ``top_k``, ``document_id`` (repeatable).
    """
    refs = [
        ref
        for value in request.args.getlist("knowledge_base_id")
        for ref in value.split(",")
        if ref.strip()
    ]
    text = _question_text(runtime.settings, request.args.get("q") or request.args.get("question"))
    question = Question(
        text=text,
        kb_ids=_kb_ids(runtime.database, refs, principal),
        top_k=int_arg(request, "top_k", runtime.settings.answer_top_k, 1, MAX_TOP_K),
        document_ids=_document_ids(request.args.getlist("document_id") or None),
        min_similarity=runtime.settings.answer_min_similarity,
        session_id=_session_id(request.args.get("session_id")),
    )
    _admit(runtime, principal, question)
    prepared = prepare_turn(runtime, principal, question)
    events = answer_events(runtime, prepared, _generator(runtime.settings))
    return Response(
        _sse(_charged(runtime, principal, events)),
        mimetype="text/event-stream",
        headers=SSE_HEADERS,
    )


def post_retrieve(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """Ranked passages only, for callers that bring their own model."""
    body = AskBody.model_validate(read_json(request))
    text = _question_text(runtime.settings, body.query or body.question)
    question = _question(runtime, body, principal, text)
    audit.note(targets=question.kb_ids)
    retrieval = retrieve_for(runtime, principal, question)
    return json_response(
        {
            "query": text,
            "passages": [passage.to_json() for passage in retrieval.passages],
            "routed_to_document_ids": retrieval.routed_to,
        }
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
    _admit(runtime, principal, question)
    prepared = prepare_turn(runtime, principal, question, regenerated_from=turn.id)
    events = answer_events(runtime, prepared, _generator(runtime.settings))
    return _answer_response(request, _charged(runtime, principal, events))


def post_feedback(
    runtime: Runtime, request: Request, principal: Principal, turn_id: str
) -> Response:
    """Rate a turn up or down, with an optional comment (a second rating replaces it)."""
    turn = _require_turn(runtime.database, principal, turn_id)
    body = FeedbackBody.model_validate(read_json(request))
    if body.rating not in ("up", "down"):
        raise InvalidInputError("rating must be 'up' or 'down'", code="invalid_rating")
    history.record_feedback(runtime.database, principal, turn.id, body.rating, body.comment)
    return json_response({"turn_id": turn.id, "rating": body.rating, "comment": body.comment})


def get_sessions(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """The caller's chat sessions, most recent first."""
    limit = int_arg(request, "limit", 50, 1, 200)
    offset = int_arg(request, "offset", 0, 0, 1_000_000)
    sessions = history.list_sessions(runtime.database, principal, limit, offset)
    return json_response({"sessions": [session.to_json() for session in sessions]})


def get_session_turns(
    runtime: Runtime, request: Request, principal: Principal, session_id: str
) -> Response:
    """A session's turns in order."""
    database = runtime.database
    if not history.session_exists(database, principal, session_id):
        raise NotFoundError(f"session {session_id!r} not found", code="session_not_found")
    turns = history.list_turns(database, principal, session_id)
    return json_response({"session_id": session_id, "turns": [t.to_json() for t in turns]})


def get_turn_citations(
    runtime: Runtime, request: Request, principal: Principal, turn_id: str
) -> Response:
    """The checked citations of a turn."""
    turn = _require_turn(runtime.database, principal, turn_id)
    return json_response({"turn_id": turn.id, "citations": turn.citations})


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
    return json_response(viewer)


ROUTES = [
    Route("POST", "/v1/ask", post_ask, audit="knowledge_base.ask"),
    Route("GET", "/v1/ask/stream", get_ask_stream, audit="knowledge_base.ask"),
    Route("POST", "/v1/retrieve", post_retrieve, audit="knowledge_base.retrieve"),
    Route("POST", "/v1/turns/<turn_id>/regenerate", post_regenerate, audit="turn.regenerate"),
    Route("POST", "/v1/turns/<turn_id>/feedback", post_feedback, audit="turn.feedback"),
    Route("GET", "/v1/turns/<turn_id>/citations", get_turn_citations),
    Route("GET", "/v1/sessions", get_sessions),
    Route("GET", "/v1/sessions/<session_id>/turns", get_session_turns),
    Route("GET", "/v1/citations/<chunk_id>/viewer", get_citation_viewer),
]
