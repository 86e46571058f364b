"""Quotas and rate limits: every check and charge, for every entry point.

Limits (names as the API and errors say them; per workspace, set by its admins through
``/v1/workspaces/{name}/limits``, else the settings' ``quota_*`` defaults; 0 is
unlimited):

=============================  =====================================  ==============
limit                          counted per                            window (UTC)
=============================  =====================================  ==============
requests_per_minute            person (token subject)                 minute
api_key_requests_per_minute    API key                                minute
questions_per_day              principal, in the workspace            day
tokens_per_question            one question (estimate, before work)   none
monthly_tokens                 workspace (real usage, after answers)  month
=============================  =====================================  ==============

The Router calls :func:`check_request` for every authenticated request; whatever
answers a question (``/v1/ask`` and its stream, regenerate, and any other entry point
that generates an answer) calls :func:`admit_question` before any work and
:func:`charge_tokens` with the model's usage afterwards. ``/v1/retrieve`` is a request,
not a question: no model writes anything for it.

Counters are rows of ``quota_counters`` taken with one atomic statement
(:func:`shared.store.quotas.take`), so a limit of N admits exactly N in its window
across all instances. A refusal is :class:`QuotaExceededError` (429, ``Retry-After``:
the seconds until the window ends). The monthly budget is charged after the fact, so
answers running concurrently when it runs out may overshoot it by their own usage; the
next question is refused.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

from shared.auth import Principal
from shared.config import Settings
from shared.db.commit_hooks import suspended
from shared.errors import QuotaExceededError
from shared.runtime import Runtime
from shared.store import quotas as store

Window = Literal["minute", "day", "month"]
LIMIT_NAMES = (
    "requests_per_minute",
    "api_key_requests_per_minute",
    "questions_per_day",
    "tokens_per_question",
    "monthly_tokens",
)
KEY_PREFIX = "key:"


@dataclass(frozen=True)
class Limits:
    """The limits in force in a workspace (0: unlimited).

    Attributes:
        workspace_id: The workspace's id; None when no workspace has the name.
    """

    workspace_id: str | None
    requests_per_minute: int
    api_key_requests_per_minute: int
    questions_per_day: int
    tokens_per_question: int
    monthly_tokens: int


def default_limits(settings: Settings) -> dict[str, int]:
    """Every limit's default from the settings, by name."""
    return {name: int(getattr(settings, f"quota_{name}")) for name in LIMIT_NAMES}


# A request's limits, read once: the Router counts the request and the answering entry
# admits its question under the same workspace's limits.
_remembered: ContextVar[dict[str, Limits] | None] = ContextVar("ragline_limits", default=None)


@contextlib.contextmanager
def remembered() -> Iterator[None]:
    """Read each workspace's limits at most once inside the block (one request)."""
    token = _remembered.set({})
    try:
        yield
    finally:
        _remembered.reset(token)


def limits_of(runtime: Runtime, workspace: str) -> Limits:
    """The limits in force in the workspace named ``workspace``: its own, else defaults.

    Inside :func:`remembered`, a workspace's limits are read once and reused.
    """
    memo = _remembered.get()
    if memo is not None and workspace in memo:
        return memo[workspace]
    limits = _read_limits(runtime, workspace)
    if memo is not None:
        memo[workspace] = limits
    return limits


def _read_limits(runtime: Runtime, workspace: str) -> Limits:
    values = default_limits(runtime.settings)
    found = store.limits_by_name(runtime.database, workspace)
    if found is not None:
        for name in LIMIT_NAMES:
            own = getattr(found, name)
            if own is not None:
                values[name] = int(own)
    return Limits(workspace_id=found.workspace_id if found else None, **values)


def window_bounds(window: Window, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The start and end of the fixed UTC window that contains ``now``."""
    now = now.astimezone(dt.UTC)
    if window == "minute":
        start = now.replace(second=0, microsecond=0)
        return start, start + dt.timedelta(minutes=1)
    if window == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + dt.timedelta(days=1)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (start + dt.timedelta(days=32)).replace(day=1)
    return start, following


def _seconds_until(end: dt.datetime, now: dt.datetime) -> int:
    return max(1, math.ceil((end - now).total_seconds()))


def _take(
    runtime: Runtime,
    *,
    limit_name: str,
    subject: str,
    window: Window,
    limit: int,
    code: str,
    amount: int = 1,
) -> None:
    """Take ``amount`` of a limit's window or raise QuotaExceededError."""
    if limit <= 0:
        return
    now = runtime.clock()
    start, end = window_bounds(window, now)
    # A counter is bookkeeping, not the change an audited request makes.
    with suspended():
        taken = store.take(runtime.database, limit_name, subject, start, amount, limit)
    if taken is None:
        retry = _seconds_until(end, now)
        raise QuotaExceededError(
            f"{limit_name} is {limit:,}; try again in {retry} s",
            limit=limit_name,
            retry_after_s=retry,
            code=code,
        )


def check_request(runtime: Runtime, principal: Principal, limits: Limits) -> None:
    """Count one request of ``principal`` against its per-minute limit.

    A person is counted under ``requests_per_minute``, an API key under
    ``api_key_requests_per_minute``, each with its own counter across workspaces and
    instances (the limit is the one of the workspace the request acts in).

    Args:
        runtime: The instance's runtime.
        principal: The authenticated caller.
        limits: The limits of the workspace the request acts in (:func:`limits_of`).

    Raises:
        QuotaExceededError: ``rate_limited``: the minute's requests are used up.
    """
    if principal.id.startswith(KEY_PREFIX):
        name, limit = "api_key_requests_per_minute", limits.api_key_requests_per_minute
    else:
        name, limit = "requests_per_minute", limits.requests_per_minute
    _take(
        runtime,
        limit_name=name,
        subject=principal.id,
        window="minute",
        limit=limit,
        code="rate_limited",
    )


def estimate_question_tokens(settings: Settings, question_tokens: int, top_k: int) -> int:
    """An upper estimate of a question's tokens, known before any work starts.

    The prompt is the question and at most ``top_k`` passages of at most the chunk size,
    bounded by the prompt budget (``answer_context_tokens``); the answer at most
    ``answer_max_tokens``.

    Args:
        settings: The answering settings.
        question_tokens: The question's estimated tokens.
        top_k: How many passages the answer may quote.
    """
    prompt = min(settings.answer_context_tokens, question_tokens + top_k * settings.chunk_tokens)
    return prompt + settings.answer_max_tokens


def admit_question(runtime: Runtime, principal: Principal, estimated_tokens: int) -> None:
    """Admit one question of ``principal`` in their workspace, or refuse it.

    Checks, in order: the question's estimate against ``tokens_per_question`` (nothing
    counted yet), the workspace's ``monthly_tokens`` budget (refused once used up), then
    takes one of the principal's ``questions_per_day``.

    Args:
        runtime: The instance's runtime.
        principal: Who asks, in the workspace they act in.
        estimated_tokens: The question's estimated prompt plus most answer tokens
            (:func:`estimate_question_tokens`).

    Raises:
        QuotaExceededError: ``quota_exceeded`` naming the limit.
    """
    limits = limits_of(runtime, principal.workspace)
    workspace_id = limits.workspace_id or principal.workspace
    if 0 < limits.tokens_per_question < estimated_tokens:
        raise QuotaExceededError(
            f"this question needs about {estimated_tokens:,} tokens; tokens_per_question is"
            f" {limits.tokens_per_question:,} (ask for fewer passages, top_k)",
            limit="tokens_per_question",
            retry_after_s=None,
        )
    if limits.monthly_tokens > 0:
        now = runtime.clock()
        start, end = window_bounds("month", now)
        spent = store.used(runtime.database, "monthly_tokens", workspace_id, start)
        if spent >= limits.monthly_tokens:
            retry = _seconds_until(end, now)
            raise QuotaExceededError(
                f"the workspace used its monthly_tokens ({limits.monthly_tokens:,});"
                f" the budget renews in {retry} s",
                limit="monthly_tokens",
                retry_after_s=retry,
            )
    _take(
        runtime,
        limit_name="questions_per_day",
        subject=f"{workspace_id}/{principal.id}",
        window="day",
        limit=limits.questions_per_day,
        code="quota_exceeded",
    )


def charge_tokens(runtime: Runtime, principal: Principal, tokens: int) -> None:
    """Charge a finished answer's real token usage to its workspace's monthly budget.

    Args:
        runtime: The instance's runtime.
        principal: Who asked, in the workspace they acted in.
        tokens: The prompt and completion tokens the model reported.
    """
    if tokens <= 0:
        return
    workspace_id = limits_of(runtime, principal.workspace).workspace_id or principal.workspace
    start, _ = window_bounds("month", runtime.clock())
    with suspended():
        store.add(runtime.database, "monthly_tokens", workspace_id, start, tokens)


def monthly_tokens_used(runtime: Runtime, workspace_id: str) -> int:
    """The tokens a workspace's answers used this UTC month."""
    start, _ = window_bounds("month", runtime.clock())
    return store.used(runtime.database, "monthly_tokens", workspace_id, start)
