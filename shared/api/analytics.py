"""Routes of the ``manage`` function: analytics of a workspace over a time range.

``GET /v1/analytics/overview`` (admins and owners: the workspace's documents,
questions per day, latency and time-to-first-token percentiles, tokens and estimated
cost by model, feedback ratio, "not in the documents" rate, most cited documents),
``GET /v1/analytics/me`` (any member: their own questions, tokens and feedback) and
``GET /v1/analytics/feedback`` (admins: negative feedback with its question, an
excerpt of the answer, the comment and the citations, newest first, paged).

Every figure is computed in SQL (``shared.store.analytics``). The range is
``[since, until)``: ISO dates (midnight UTC) or datetimes (UTC unless they carry an
offset); by default the last 30 UTC days, today included. Query parameters and
responses are the pydantic models below.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from werkzeug.wrappers import Request, Response

from shared.api.access import require_kb
from shared.api.http import Route, instance_response
from shared.auth import Principal, authorize
from shared.errors import InvalidInputError
from shared.ids import is_uuid
from shared.runtime import Runtime
from shared.store import analytics as store

DEFAULT_DAYS = 30
# Years a range may touch: inside what both Python and PostgreSQL represent, with room
# for the default range's arithmetic.
FIRST_YEAR, LAST_YEAR = 1970, 9998


def _moment(value: str | None) -> datetime | None:
    """An ISO date (its midnight, UTC) or datetime (UTC unless it names an offset)."""
    if value is None:
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as error:
        raise ValueError("must be an ISO 8601 date or datetime") from error
    if not FIRST_YEAR <= parsed.year <= LAST_YEAR:
        raise ValueError(f"must be between the years {FIRST_YEAR} and {LAST_YEAR}")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class AnalyticsQuery(BaseModel):
    """Query of ``GET /v1/analytics/overview`` and ``GET /v1/analytics/me``.

    Other parameters are ignored, as every route of the API ignores them (a client's
    cache-busting parameter must not fail a request).
    """

    model_config = ConfigDict(extra="ignore")

    since: datetime | None = Field(None, description="start (inclusive); ISO date or datetime")
    until: datetime | None = Field(None, description="end (exclusive); ISO date or datetime")
    knowledge_base_id: str | None = Field(
        None, max_length=200, description="only this knowledge base (id or name)"
    )

    @field_validator("since", "until", mode="before")
    @classmethod
    def _iso(cls, value: object) -> datetime | None:
        """Only ISO 8601 text: no Unix timestamps or other forms pydantic would accept."""
        if value is None or isinstance(value, datetime):
            return value
        if not isinstance(value, str):
            raise ValueError("must be an ISO 8601 date or datetime")
        return _moment(value)


class FeedbackQuery(AnalyticsQuery):
    """Query of ``GET /v1/analytics/feedback``."""

    limit: int = Field(20, ge=1, le=100, description="items per page")
    page_token: str | None = Field(None, max_length=2000, description="from the previous page")


class DayFigures(BaseModel):
    """One UTC day of the range."""

    day: date
    questions: int
    answered: int
    not_in_documents: int


class Percentiles(BaseModel):
    """The median and 95th percentile (``percentile_cont``), in milliseconds."""

    p50: float | None
    p95: float | None


class Questions(BaseModel):
    """Questions asked in the range, by outcome and by day."""

    total: int
    answered: int
    failed: int
    cancelled: int
    per_day: list[DayFigures]


class ModelUsage(BaseModel):
    """One model's tokens and estimated cost (null when the model has no price)."""

    model: str
    questions: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    estimated_cost_usd: float | None


class Usage(BaseModel):
    """Tokens by model; the total cost counts the priced models only (see unpriced)."""

    by_model: list[ModelUsage]
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    estimated_cost_usd: float
    unpriced_models: list[str]


class Feedback(BaseModel):
    """Ratings given in the range; ratio = positive / (positive + negative)."""

    positive: int
    negative: int
    ratio: float | None


class NotInDocuments(BaseModel):
    """Answered questions whose answer said the documents do not hold one."""

    count: int
    answered: int
    rate: float | None


class Content(BaseModel):
    """Documents now, their active versions' pages and chunks; ``added`` in the range."""

    documents: int
    ready_documents: int
    archived_documents: int
    added_documents: int
    pages: int
    chunks: int


class CitedDocument(BaseModel):
    """A document the range's answers cited: citations (each ``[n]``) and answers."""

    document_id: str
    knowledge_base_id: str
    title: str | None
    filename: str
    citations: int
    answers: int


class Overview(BaseModel):
    """Body of ``GET /v1/analytics/overview``."""

    workspace: str
    knowledge_base_id: str | None
    since: datetime
    until: datetime
    content: Content
    questions: Questions
    latency_ms: Percentiles
    first_token_ms: Percentiles
    usage: Usage
    feedback: Feedback
    not_in_documents: NotInDocuments
    most_cited_documents: list[CitedDocument]


class MyAnalytics(BaseModel):
    """Body of ``GET /v1/analytics/me``: the caller's own questions and feedback."""

    principal: str
    workspace: str
    knowledge_base_id: str | None
    since: datetime
    until: datetime
    questions: Questions
    latency_ms: Percentiles
    usage: Usage
    feedback: Feedback
    not_in_documents: NotInDocuments


class NegativeFeedbackItem(BaseModel):
    """A thumbs-down and the answer it was about."""

    rated_at: datetime
    rated_by: str
    comment: str
    question: str
    answer_excerpt: str
    citations: list[dict[str, Any]]
    knowledge_base_ids: list[str]
    model: str | None
    asked_at: datetime


class FeedbackPage(BaseModel):
    """Body of ``GET /v1/analytics/feedback``."""

    workspace: str
    knowledge_base_id: str | None
    since: datetime
    until: datetime
    feedback: list[NegativeFeedbackItem]
    next_page_token: str | None


def _window(
    runtime: Runtime, principal: Principal, query: AnalyticsQuery, asker: str | None = None
) -> store.Window:
    """The range and knowledge base the query names, checked.

    Raises:
        InvalidInputError: ``since`` is not before ``until``, or the range is longer
            than ``Settings.analytics_max_days``.
        NotFoundError: The knowledge base is not one the caller may read.
    """
    longest = runtime.settings.analytics_max_days
    if query.until is not None:
        until = query.until
    else:
        until = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), time(), UTC)
    since = query.since if query.since is not None else until - timedelta(days=DEFAULT_DAYS)
    if since >= until:
        raise InvalidInputError("since must be before until", code="invalid_range")
    if until - since > timedelta(days=longest):
        raise InvalidInputError(
            f"the range may cover at most {longest} days", code="range_too_long"
        )
    kb_id = None
    if query.knowledge_base_id is not None:
        kb_id = require_kb(runtime.database, query.knowledge_base_id, principal).id
    return store.Window(principal.workspace, since, until, kb_id, asker)


def _questions(figures: store.AnswerFigures, days: list[store.DayCounts]) -> Questions:
    return Questions(
        total=figures.questions,
        answered=figures.answered,
        failed=figures.failed,
        cancelled=figures.cancelled,
        per_day=[DayFigures.model_validate(day.__dict__) for day in days],
    )


def _usage(rows: list[store.ModelUsage]) -> Usage:
    return Usage(
        by_model=[
            ModelUsage(
                model=row.model,
                questions=row.answers,
                prompt_tokens=row.prompt_tokens,
                completion_tokens=row.completion_tokens,
                total_tokens=row.total_tokens,
                estimated_cost_usd=row.estimated_cost_usd,
            )
            for row in rows
        ],
        prompt_tokens=sum(row.prompt_tokens for row in rows),
        completion_tokens=sum(row.completion_tokens for row in rows),
        total_tokens=sum(row.total_tokens for row in rows),
        estimated_cost_usd=sum(row.estimated_cost_usd or 0.0 for row in rows),
        unpriced_models=[row.model for row in rows if row.estimated_cost_usd is None],
    )


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _feedback(counts: store.FeedbackCounts) -> Feedback:
    rated = counts.positive + counts.negative
    return Feedback(
        positive=counts.positive, negative=counts.negative, ratio=_share(counts.positive, rated)
    )


def _not_in_documents(figures: store.AnswerFigures) -> NotInDocuments:
    return NotInDocuments(
        count=figures.not_in_documents,
        answered=figures.answered,
        rate=_share(figures.not_in_documents, figures.answered),
    )


def _query(model: type[AnalyticsQuery], request: Request) -> Any:
    """The query string validated by ``model`` (a repeated parameter's first value)."""
    return model.model_validate(request.args.to_dict(flat=True))


def get_overview(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """The workspace's analytics over the range (admins and owners)."""
    authorize(principal, "admin")
    window = _window(runtime, principal, _query(AnalyticsQuery, request))
    database = runtime.database
    figures = store.answer_figures(database, window)
    overview = Overview(
        workspace=window.workspace,
        knowledge_base_id=window.kb_id,
        since=window.since,
        until=window.until,
        content=Content.model_validate(store.content_totals(database, window).__dict__),
        questions=_questions(figures, store.questions_per_day(database, window)),
        latency_ms=Percentiles(p50=figures.latency_p50_ms, p95=figures.latency_p95_ms),
        first_token_ms=Percentiles(p50=figures.first_token_p50_ms, p95=figures.first_token_p95_ms),
        usage=_usage(store.usage_by_model(database, window, runtime.settings.model_prices)),
        feedback=_feedback(store.feedback_counts(database, window)),
        not_in_documents=_not_in_documents(figures),
        most_cited_documents=[
            CitedDocument.model_validate(row.__dict__)
            for row in store.most_cited_documents(database, window, principal)
        ],
    )
    return instance_response(overview)


def get_my_analytics(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """The caller's own questions, tokens and feedback over the range (any member)."""
    authorize(principal, "read")
    window = _window(runtime, principal, _query(AnalyticsQuery, request), asker=principal.id)
    database = runtime.database
    figures = store.answer_figures(database, window)
    mine = MyAnalytics(
        principal=principal.id,
        workspace=window.workspace,
        knowledge_base_id=window.kb_id,
        since=window.since,
        until=window.until,
        questions=_questions(figures, store.questions_per_day(database, window)),
        latency_ms=Percentiles(p50=figures.latency_p50_ms, p95=figures.latency_p95_ms),
        usage=_usage(store.usage_by_model(database, window, runtime.settings.model_prices)),
        feedback=_feedback(store.feedback_counts(database, window)),
        not_in_documents=_not_in_documents(figures),
    )
    return instance_response(mine)


def _encode_cursor(item: store.NegativeFeedback) -> str:
    raw = json.dumps({"at": item.rated_at, "t": item.turn_key, "p": item.principal})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(token: str | None) -> store.FeedbackCursor | None:
    """The position a page token names (400 for a token this API did not issue)."""
    if not token:
        return None
    invalid = InvalidInputError("page_token is not one this API issued", code="invalid_page_token")
    try:
        fields = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error, UnicodeError) as error:
        raise invalid from error
    if not isinstance(fields, dict) or not all(
        isinstance(fields.get(key), str) for key in ("at", "t", "p")
    ):
        raise invalid
    try:
        _moment(fields["at"])
    except ValueError as error:
        raise invalid from error
    if not is_uuid(fields["t"]) or "\x00" in fields["p"]:
        raise invalid
    return store.FeedbackCursor(rated_at=fields["at"], turn_key=fields["t"], principal=fields["p"])


def get_negative_feedback(runtime: Runtime, request: Request, principal: Principal) -> Response:
    """Thumbs-down given in the range, newest first, with what they were about (admins)."""
    authorize(principal, "admin")
    query = _query(FeedbackQuery, request)
    window = _window(runtime, principal, query)
    after = _decode_cursor(query.page_token)
    # One more than the page: whether there is a next one.
    rows = store.negative_feedback(runtime.database, window, after, query.limit + 1)
    page = rows[: query.limit]
    body = FeedbackPage(
        workspace=window.workspace,
        knowledge_base_id=window.kb_id,
        since=window.since,
        until=window.until,
        feedback=[
            NegativeFeedbackItem(
                rated_at=datetime.fromisoformat(row.rated_at),
                rated_by=row.principal,
                comment=row.comment,
                question=row.question,
                answer_excerpt=row.answer_excerpt,
                citations=row.citations,
                knowledge_base_ids=row.knowledge_base_ids,
                model=row.model,
                asked_at=datetime.fromisoformat(row.asked_at),
            )
            for row in page
        ],
        next_page_token=_encode_cursor(page[-1]) if len(rows) > query.limit else None,
    )
    return instance_response(body)


TAGS = ("analytics",)

ROUTES = [
    Route(
        "GET",
        "/v1/analytics/overview",
        get_overview,
        query=AnalyticsQuery,
        responses={200: Overview},
        tags=TAGS,
    ),
    Route(
        "GET",
        "/v1/analytics/me",
        get_my_analytics,
        query=AnalyticsQuery,
        responses={200: MyAnalytics},
        tags=TAGS,
    ),
    Route(
        "GET",
        "/v1/analytics/feedback",
        get_negative_feedback,
        query=FeedbackQuery,
        responses={200: FeedbackPage},
        tags=TAGS,
    ),
]
