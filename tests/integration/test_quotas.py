"""Quotas and rate limits through the real HTTP stack: exact under concurrency, windowed.

Requests go over loopback HTTP to the stack's app, 20 at once on threads; the counters
are rows of the embedded PostgreSQL. The stack's clock (``runtime.clock``) is held at a
fixed time and then moved to the next window.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from scripts.localstack.stack import LocalStack
from shared.api.quotas import charge_tokens, window_bounds
from shared.auth import Principal
from shared.pipeline.sweeper import forget_ended_quota_windows
from tests.support.api import Api, body_of
from tests.support.openai_server import OpenAIServer
from tests.support.principals import Caller, api_key, invite
from tests.support.stack import served

WORKSPACE = "default"
CONCURRENT = 20
# Mid-minute, mid-day, mid-month: the windows are not about to end on their own.
NOON = dt.datetime(2026, 3, 14, 12, 30, 30, tzinfo=dt.UTC)
# Setting a test up (inviting, creating keys) happens in an earlier minute of that day.
SETUP = NOON - dt.timedelta(minutes=10)


@dataclass
class Clock:
    """The stack's time, held still until a test moves it."""

    now: dt.datetime

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock(clean_stack: LocalStack) -> Iterator[Clock]:
    """Hold the stack's clock at :data:`SETUP`; tests move it to :data:`NOON` and on."""
    held = Clock(SETUP)
    original = clean_stack.runtime.clock
    clean_stack.runtime.clock = held
    try:
        yield held
    finally:
        clean_stack.runtime.clock = original


@pytest.fixture
def base_url(clean_stack: LocalStack) -> Iterator[str]:
    """The stack served over loopback HTTP."""
    with served(clean_stack.app) as url:
        yield url


def set_limits(owner: Api, **limits: int | None) -> dict[str, Any]:
    """Replace the default workspace's limits (as its owner)."""
    response = owner.put(f"/v1/workspaces/{WORKSPACE}/limits", json=limits)
    assert response.status_code == 200, response.get_data(as_text=True)
    return dict(body_of(response))


def at_once(count: int, call: Callable[[], requests.Response]) -> list[requests.Response]:
    """``count`` calls sent together from as many threads."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: call(), range(count)))


def headers_of(caller: Caller) -> dict[str, str]:
    """The caller's credential and workspace headers."""
    return dict(caller.api.headers)


def check_split(responses: list[requests.Response], allowed: int, limit: str) -> None:
    """Exactly ``allowed`` succeeded; every other one is a 429 naming ``limit``."""
    statuses = [response.status_code for response in responses]
    assert statuses.count(200) == allowed, statuses
    refused = [response for response in responses if response.status_code != 200]
    assert len(refused) == len(responses) - allowed
    for response in refused:
        assert response.status_code == 429, response.text
        error = response.json()["error"]
        assert error["limit"] == limit
        assert int(response.headers["Retry-After"]) == error["retry_after"] > 0


def test_requests_per_minute_admit_exactly_n_of_20_then_the_next_minute(
    clean_stack: LocalStack, clock: Clock, base_url: str
) -> None:
    owner = Api(clean_stack)
    viewer = invite(owner, clean_stack, WORKSPACE, "rpm-viewer", "viewer")
    set_limits(owner, requests_per_minute=7)
    clock.now = NOON
    url = f"{base_url}/v1/knowledge-bases"

    responses = at_once(CONCURRENT, lambda: requests.get(url, headers=headers_of(viewer)))
    check_split(responses, 7, "requests_per_minute")
    _, end = window_bounds("minute", NOON)
    retry = {int(r.headers["Retry-After"]) for r in responses if r.status_code == 429}
    assert retry == {int((end - NOON).total_seconds())}
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 429} == {
        "rate_limited"
    }

    clock.now = NOON + dt.timedelta(minutes=1)
    again = at_once(CONCURRENT, lambda: requests.get(url, headers=headers_of(viewer)))
    check_split(again, 7, "requests_per_minute")


def test_api_keys_and_people_are_counted_separately(
    clean_stack: LocalStack, clock: Clock, base_url: str
) -> None:
    owner = Api(clean_stack)
    viewer = invite(owner, clean_stack, WORKSPACE, "rpm-person", "viewer")
    key = api_key(owner, clean_stack, WORKSPACE, "rpm-key", "viewer")
    other_key = api_key(owner, clean_stack, WORKSPACE, "rpm-key-2", "viewer")
    set_limits(owner, requests_per_minute=4, api_key_requests_per_minute=3)
    clock.now = NOON
    url = f"{base_url}/v1/knowledge-bases"

    check_split(
        at_once(CONCURRENT, lambda: requests.get(url, headers=headers_of(key))),
        3,
        "api_key_requests_per_minute",
    )
    # The key's minute is used up; another key and the person still have theirs.
    check_split(
        at_once(CONCURRENT, lambda: requests.get(url, headers=headers_of(other_key))),
        3,
        "api_key_requests_per_minute",
    )
    check_split(
        at_once(CONCURRENT, lambda: requests.get(url, headers=headers_of(viewer))),
        4,
        "requests_per_minute",
    )


def test_unlimited_and_default_limits(clean_stack: LocalStack, clock: Clock) -> None:
    owner = Api(clean_stack)
    shown = set_limits(owner, requests_per_minute=0)
    assert shown["limits"]["requests_per_minute"] == {"value": 0, "source": "workspace"}
    defaults = clean_stack.runtime.settings
    assert shown["limits"]["questions_per_day"] == {
        "value": defaults.quota_questions_per_day,
        "source": "default",
    }
    counted = "SELECT coalesce(sum(used), 0) FROM quota_counters"
    before = clean_stack.database.scalar(counted)  # the PUT, under the default
    for _ in range(30):  # 0: no limit, nothing counted
        assert owner.get("/v1/knowledge-bases").status_code == 200
    assert clean_stack.database.scalar(counted) == before


def ask(base_url: str, caller: Caller, kb_id: str, **extra: Any) -> requests.Response:
    """``POST /v1/ask`` as ``caller``."""
    return requests.post(
        f"{base_url}/v1/ask",
        json={"knowledge_base_ids": [kb_id], "question": "When do the tides rise?", **extra},
        headers=headers_of(caller),
        timeout=120,
    )


def test_questions_per_day_are_exact_per_principal_and_renew_the_next_day(
    clean_stack: LocalStack, clock: Clock, base_url: str
) -> None:
    owner = Api(clean_stack)
    kb = owner.create_kb("quota-questions")
    viewer = invite(owner, clean_stack, WORKSPACE, "qpd-viewer", "viewer")
    other = invite(owner, clean_stack, WORKSPACE, "qpd-other", "viewer")
    set_limits(owner, questions_per_day=3)
    clock.now = NOON

    check_split(
        at_once(CONCURRENT, lambda: ask(base_url, viewer, kb["id"])), 3, "questions_per_day"
    )
    # Retrieval is a request, not a question.
    retrieved = requests.post(
        f"{base_url}/v1/retrieve",
        json={"knowledge_base_ids": [kb["id"]], "query": "tides"},
        headers=headers_of(viewer),
    )
    assert retrieved.status_code == 200, retrieved.text
    assert ask(base_url, other, kb["id"]).status_code == 200  # their own day

    _, midnight = window_bounds("day", NOON)
    refused = ask(base_url, viewer, kb["id"])
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert int(refused.headers["Retry-After"]) == int((midnight - NOON).total_seconds())
    clock.now = midnight
    assert ask(base_url, viewer, kb["id"]).status_code == 200


def test_streamed_and_regenerated_answers_are_questions_too(
    clean_stack: LocalStack, clock: Clock, base_url: str
) -> None:
    owner = Api(clean_stack)
    kb = owner.create_kb("quota-stream")
    viewer = invite(owner, clean_stack, WORKSPACE, "qpd-stream", "viewer")
    set_limits(owner, questions_per_day=2)
    first = ask(base_url, viewer, kb["id"])
    assert first.status_code == 200
    turn_id = first.json()["turn_id"]
    regenerated = requests.post(
        f"{base_url}/v1/turns/{turn_id}/regenerate", headers=headers_of(viewer)
    )
    assert regenerated.status_code == 200, regenerated.text
    streamed = requests.get(
        f"{base_url}/v1/ask/stream",
        params={"knowledge_base_id": kb["id"], "q": "When do the tides rise?"},
        headers=headers_of(viewer),
    )
    assert streamed.status_code == 429
    assert streamed.json()["error"]["limit"] == "questions_per_day"


def test_tokens_per_question_refuse_before_any_work(
    clean_stack: LocalStack, clock: Clock, base_url: str
) -> None:
    owner = Api(clean_stack)
    kb = owner.create_kb("quota-tokens")
    viewer = invite(owner, clean_stack, WORKSPACE, "tpq-viewer", "viewer")
    settings = clean_stack.runtime.settings
    # One passage fits, eight do not (the estimate: question + top_k chunks + answer).
    one_passage = 40 + settings.chunk_tokens + settings.answer_max_tokens
    set_limits(owner, tokens_per_question=one_passage, questions_per_day=5)

    refused = ask(base_url, viewer, kb["id"], top_k=8)
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["limit"], error["retry_after"]) == (
        "quota_exceeded",
        "tokens_per_question",
        None,
    )
    assert "Retry-After" not in refused.headers  # waiting does not make it smaller
    assert clean_stack.database.scalar("SELECT count(*) FROM chat_turns") == 0
    assert ask(base_url, viewer, kb["id"], top_k=1).status_code == 200
    # The refused question took nothing of the day's questions.
    assert (
        clean_stack.database.scalar(
            "SELECT used FROM quota_counters WHERE limit_name = 'questions_per_day'"
        )
        == 1
    )


def test_monthly_budget_charges_real_usage_and_refuses_once_spent(
    clean_stack: LocalStack, clock: Clock, base_url: str
) -> None:
    owner = Api(clean_stack)
    kb = owner.create_kb("quota-budget")
    viewer = invite(owner, clean_stack, WORKSPACE, "budget-viewer", "viewer")
    set_limits(owner, monthly_tokens=1000)
    clock.now = NOON
    principal = Principal(id=viewer.id, workspace=WORKSPACE, role="viewer")

    charge_tokens(clean_stack.runtime, principal, 999)
    assert ask(base_url, viewer, kb["id"]).status_code == 200  # 1 token left: admitted
    charge_tokens(clean_stack.runtime, principal, 1)
    refused = ask(base_url, viewer, kb["id"])
    assert refused.status_code == 429
    assert refused.json()["error"]["limit"] == "monthly_tokens"
    _, month_end = window_bounds("month", NOON)
    assert int(refused.headers["Retry-After"]) == int((month_end - NOON).total_seconds())
    shown = body_of(owner.get(f"/v1/workspaces/{WORKSPACE}/limits"))
    assert shown["monthly_tokens_used"] == 1000

    clock.now = month_end
    assert ask(base_url, viewer, kb["id"]).status_code == 200


def test_only_admins_set_limits(clean_stack: LocalStack, clock: Clock) -> None:
    owner = Api(clean_stack)
    editor = invite(owner, clean_stack, WORKSPACE, "limits-editor", "editor")
    admin = invite(owner, clean_stack, WORKSPACE, "limits-admin", "admin")
    path = f"/v1/workspaces/{WORKSPACE}/limits"
    assert editor.api.get(path).status_code == 200
    assert editor.api.put(path, json={"questions_per_day": 1}).status_code == 403
    assert admin.api.put(path, json={"questions_per_day": 1}).status_code == 200
    assert admin.api.put(path, json={"questions_per_day": -1}).status_code == 400
    assert admin.api.put(path, json={"bogus": 1}).status_code == 400
    assert owner.get("/v1/workspaces/elsewhere/limits").status_code == 404


def test_the_sweep_forgets_counters_of_ended_windows(clean_stack: LocalStack, clock: Clock) -> None:
    owner = Api(clean_stack)
    kb = owner.create_kb("quota-sweep")
    set_limits(owner, requests_per_minute=100, questions_per_day=10, monthly_tokens=10**6)
    clock.now = NOON
    response = owner.post(
        "/v1/ask", json={"knowledge_base_ids": [kb["id"]], "question": "When do the tides rise?"}
    )
    assert response.status_code == 200
    me = body_of(owner.get("/v1/me"))["principal"]["id"]
    charge_tokens(clean_stack.runtime, Principal(id=me, workspace=WORKSPACE), 5)

    def limits_kept() -> set[str]:
        rows = clean_stack.database.run("SELECT DISTINCT limit_name FROM quota_counters")
        return {name for (name,) in rows}

    forget_ended_quota_windows(clean_stack.runtime)  # the setup's minute has ended
    assert limits_kept() == {"requests_per_minute", "questions_per_day", "monthly_tokens"}
    clock.now = NOON + dt.timedelta(minutes=3)
    assert forget_ended_quota_windows(clean_stack.runtime) > 0
    assert limits_kept() == {"questions_per_day", "monthly_tokens"}
    clock.now = NOON + dt.timedelta(days=3)
    forget_ended_quota_windows(clean_stack.runtime)
    assert limits_kept() == {"monthly_tokens"}
    clock.now = NOON + dt.timedelta(days=63)
    forget_ended_quota_windows(clean_stack.runtime)
    assert limits_kept() == set()


def test_the_budget_is_charged_with_the_models_reported_usage(
    clean_stack: LocalStack, clock: Clock, base_url: str, llm: OpenAIServer
) -> None:
    owner = Api(clean_stack)
    kb = owner.create_kb("quota-usage")
    owner.ingest(kb["id"], "tides.txt", b"The tides rise twice a day, at dawn and at dusk.")
    viewer = invite(owner, clean_stack, WORKSPACE, "usage-viewer", "viewer")
    set_limits(owner, monthly_tokens=1)  # any answer spends it
    clock.now = NOON
    llm.script_chat("Twice a day [1].")

    streamed = requests.get(
        f"{base_url}/v1/ask/stream",
        params={"knowledge_base_id": kb["id"], "q": "When do the tides rise?"},
        headers=headers_of(viewer),
        timeout=120,
    )
    assert streamed.status_code == 200
    done = json.loads(streamed.text.split("event: done\ndata: ", 1)[1].split("\n", 1)[0])
    spent = done["usage"]["total_tokens"]
    assert spent > 0  # the model reported it
    shown = body_of(owner.get(f"/v1/workspaces/{WORKSPACE}/limits"))
    assert shown["monthly_tokens_used"] == spent
    refused = ask(base_url, viewer, kb["id"])
    assert (refused.status_code, refused.json()["error"]["limit"]) == (429, "monthly_tokens")


def test_a_question_reads_its_workspaces_limits_once(
    clean_stack: LocalStack, clock: Clock, llm: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counting the request, admitting the question and charging its usage share one read."""
    from shared.store import quotas as store

    owner = Api(clean_stack)
    kb = owner.create_kb("quota-reads")
    owner.ingest(kb["id"], "tides.txt", b"The tides rise twice a day, at dawn and at dusk.")
    set_limits(owner, monthly_tokens=1_000_000, questions_per_day=2)
    clock.now = NOON
    reads: list[str] = []
    real = store.limits_by_name

    def counted(database: Any, workspace: str) -> Any:
        reads.append(workspace)
        return real(database, workspace)

    monkeypatch.setattr(store, "limits_by_name", counted)
    for expected_status in (200, 200, 429):
        llm.script_chat("Twice a day [1].")
        reads.clear()
        response = owner.post(
            "/v1/ask", json={"knowledge_base_ids": [kb["id"]], "question": "When do tides rise?"}
        )
        assert response.status_code == expected_status, response.get_data(as_text=True)
        assert reads == [WORKSPACE]
    # Each request reads afresh: a change applies to the very next one.
    set_limits(owner, monthly_tokens=1_000_000, questions_per_day=3)
    llm.script_chat("Twice a day [1].")
    answered = owner.post(
        "/v1/ask", json={"knowledge_base_ids": [kb["id"]], "question": "When do tides rise?"}
    )
    assert answered.status_code == 200
    used = body_of(owner.get(f"/v1/workspaces/{WORKSPACE}/limits"))["monthly_tokens_used"]
    assert used > 0
