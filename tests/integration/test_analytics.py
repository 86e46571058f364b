"""Analytics: every figure equals what the test computes from its own requests.

Through the real stack: three small documents ingested, questions asked by the owner
and a viewer (answered by the local OpenAI-compatible server, one by a model without
a price, one that fails, one about something the documents do not hold), feedback
given, and some turns and ratings moved to the day before (the product stamps them
with the database clock; moving them is the test's clock). The expected figures come
from the responses of those requests and the turns as the history API shows them
(latencies, times, usage, citations), never from the product's SQL. Another
workspace's questions, documents and feedback never show.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from scripts.localstack.stack import LocalStack
from shared.answering.generators import clear_generator_cache
from shared.config import DEFAULT_MODEL_PRICES, ModelPrice
from tests.support.api import Api, body_of
from tests.support.openai_server import LLM_MODEL, OpenAIServer
from tests.support.principals import invite, signed_in, workspace_owner

PRICES = {**DEFAULT_MODEL_PRICES, LLM_MODEL: ModelPrice(prompt=2.0, completion=8.0)}
UNPRICED = "mystery-model"
# A dated snapshot is priced as its model.
SNAPSHOT = "gpt-4o-mini-2024-07-18"
DOCUMENTS = {
    "tides-handbook.txt": "The lighthouse keeper logs the tides every morning."
    " Tides rise twice a day at the harbour of Port Alder.",
    "lamp-oil-ledger.txt": "The ledger records deliveries of lamp oil to the lighthouse."
    " Lamp oil arrives every second Tuesday by boat.",
    "storm-log.txt": "Storm warnings are raised with three red flags on the mast."
    " The storm log keeps every warning since the lighthouse opened.",
}
QUESTIONS = [
    "When do the tides rise at the harbour?",
    "How often does the lamp oil arrive?",
    "How are storm warnings raised?",
    "What does the keeper log every morning?",
]
ABSENT = "What is the population of Ulaanbaatar in Mongolia?"


def percentile_cont(values: list[int], fraction: float) -> float:
    """PostgreSQL's ``percentile_cont``: linear interpolation between the ranks."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ask(api: Api, kb_id: str, question: str, expected: int = 200) -> dict[str, Any]:
    response = api.post("/v1/ask", json={"knowledge_base_ids": [kb_id], "question": question})
    assert response.status_code == expected, response.get_data(as_text=True)
    return dict(body_of(response))


def turns_of(api: Api) -> dict[str, dict[str, Any]]:
    """Every turn of the caller's sessions, by id, as the history API shows them."""
    turns: dict[str, dict[str, Any]] = {}
    for session in body_of(api.get("/v1/sessions"))["sessions"]:
        listed = body_of(api.get(f"/v1/sessions/{session['id']}/turns"))["turns"]
        turns.update({turn["id"]: turn for turn in listed})
    return turns


def utc_day(stamp: str) -> date:
    return datetime.fromisoformat(stamp).astimezone(UTC).date()


def analytics(api: Api, path: str, **query: str) -> dict[str, Any]:
    response = api.get(f"/v1/analytics/{path}", query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return dict(body_of(response))


def expected_usage(turns: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Tokens and cost by model, from the turns' recorded usage."""
    by_model: dict[str, dict[str, Any]] = {}
    for turn in turns:
        model = turn["model"]
        if model is None or model == "none":
            continue
        row = by_model.setdefault(
            model, {"questions": 0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        )
        row["questions"] += 1
        for field in ("prompt_tokens", "completion_tokens", "total_tokens"):
            row[field] += turn["usage"][field]
    for model, row in by_model.items():
        price = PRICES.get(re.sub(r"-\d{4}-\d{2}-\d{2}$", "", model))
        row["estimated_cost_usd"] = (
            None
            if price is None
            else (row["prompt_tokens"] * price.prompt + row["completion_tokens"] * price.completion)
            / 1_000_000
        )
    return by_model


def assert_usage(usage: dict[str, Any], turns: list[dict[str, Any]]) -> None:
    expected = expected_usage(turns)
    got = {row.pop("model"): row for row in [dict(r) for r in usage["by_model"]]}
    assert got.keys() == expected.keys()
    for model, row in expected.items():
        cost = row.pop("estimated_cost_usd")
        assert {k: got[model][k] for k in row} == row, model
        if cost is None:
            assert got[model]["estimated_cost_usd"] is None, model
        else:
            assert got[model]["estimated_cost_usd"] == pytest.approx(cost), model
    priced = [r for r in expected_usage(turns).values() if r["estimated_cost_usd"] is not None]
    assert usage["estimated_cost_usd"] == pytest.approx(
        sum(r["estimated_cost_usd"] for r in priced)
    )
    assert usage["total_tokens"] == sum(r["total_tokens"] for r in expected.values())
    assert sorted(usage["unpriced_models"]) == sorted(
        m for m, r in expected_usage(turns).items() if r["estimated_cost_usd"] is None
    )


def assert_answers(body: dict[str, Any], turns: list[dict[str, Any]]) -> None:
    """Counts, per-day buckets, percentiles and the not-in-the-documents rate."""
    answered = [t for t in turns if t["status"] == "answered"]
    questions = body["questions"]
    assert questions["total"] == len(turns)
    assert questions["answered"] == len(answered)
    assert questions["failed"] == sum(t["status"] == "failed" for t in turns)
    days = Counter(utc_day(t["created_at"]).isoformat() for t in turns)
    answered_days = Counter(utc_day(t["created_at"]).isoformat() for t in answered)
    nowhere = [t for t in answered if not t["citations"]]
    nowhere_days = Counter(utc_day(t["created_at"]).isoformat() for t in nowhere)
    per_day = {d["day"]: d for d in questions["per_day"]}
    assert {d: v["questions"] for d, v in per_day.items() if v["questions"]} == dict(days)
    assert {d: v["answered"] for d, v in per_day.items() if v["answered"]} == dict(answered_days)
    assert {d: v["not_in_documents"] for d, v in per_day.items() if v["not_in_documents"]} == dict(
        nowhere_days
    )
    latencies = [t["latency_ms"] for t in answered]
    assert body["latency_ms"]["p50"] == pytest.approx(percentile_cont(latencies, 0.5))
    assert body["latency_ms"]["p95"] == pytest.approx(percentile_cont(latencies, 0.95))
    rate = body["not_in_documents"]
    assert (rate["count"], rate["answered"]) == (len(nowhere), len(answered))
    assert rate["rate"] == pytest.approx(len(nowhere) / len(answered))


@pytest.fixture
def priced(stack: LocalStack, llm: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> OpenAIServer:
    """The local model answers, citing passage 1; the stack knows the test's prices."""
    runtime = stack.runtime
    monkeypatch.setattr(
        runtime, "settings", runtime.settings.model_copy(update={"model_prices": PRICES})
    )
    llm.script_chat("The documents say so [1]. Nothing else is known [2].")
    return llm


def use_model(stack: LocalStack, monkeypatch: pytest.MonkeyPatch, model: str) -> None:
    runtime = stack.runtime
    monkeypatch.setattr(
        runtime, "settings", runtime.settings.model_copy(update={"openai_model": model})
    )
    clear_generator_cache()


def test_figures_equal_those_computed_from_the_requests(
    clean_stack: LocalStack, priced: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = clean_stack
    owner = Api(stack)
    kb = owner.create_kb("analytics")
    other_kb = owner.create_kb("analytics-other")
    documents = {
        name: owner.ingest(kb["id"], name, text.encode()) for name, text in DOCUMENTS.items()
    }
    assert all(d["status"] == "ready" for d in documents.values()), documents
    owner.ingest(other_kb["id"], "other.txt", b"The other harbour has no lighthouse at all.")
    vera = invite(owner, stack, "default", "vera", "viewer")
    # Another workspace: its questions and feedback must never count here.
    olga = workspace_owner(stack, "olga", "elsewhere")
    olga_kb = olga.api.create_kb("secret-kb")
    olga.api.ingest(olga_kb["id"], "olga-secret.txt", b"The secret harbour tides rise at noon.")
    olga_turn = ask(olga.api, olga_kb["id"], "When do the secret harbour tides rise?")
    olga.api.post(f"/v1/turns/{olga_turn['turn_id']}/feedback", json={"rating": "down"})

    owner_answers = [ask(owner, kb["id"], q) for q in QUESTIONS]
    absent = ask(owner, kb["id"], ABSENT)
    assert absent["citations"] == [], absent
    use_model(stack, monkeypatch, UNPRICED)
    owner_answers.append(ask(owner, kb["id"], "Who logs the tides?"))
    use_model(stack, monkeypatch, SNAPSHOT)
    owner_answers.append(ask(owner, kb["id"], "Who keeps the storm log?"))
    use_model(stack, monkeypatch, LLM_MODEL)
    priced.fail(400, path="/v1/chat/completions")  # permanent: the turn fails
    ask(owner, kb["id"], "Which boat brings the oil?", expected=502)
    vera_answers = [ask(vera.api, kb["id"], q) for q in QUESTIONS[:2]]
    ask(owner, other_kb["id"], "Is there a lighthouse at the other harbour?")

    # Feedback: the owner rates three answers, the viewer one (down, with a comment).
    ratings = [
        (owner, owner_answers[0], "up"),
        (owner, owner_answers[1], "up"),
        (owner, owner_answers[2], "down"),
        (vera.api, vera_answers[0], "down"),
    ]
    for api, answer, rating in ratings:
        given = api.post(
            f"/v1/turns/{answer['turn_id']}/feedback",
            json={"rating": rating, "comment": f"{rating} for {answer['turn_id'][:8]}"},
        )
        assert given.status_code == 200, given.get_data(as_text=True)

    # The clock: two of the owner's turns and one rating happened the day before.
    moved = [owner_answers[0]["turn_id"], owner_answers[3]["turn_id"]]
    stack.database.run(
        "UPDATE chat_turns SET created_at = created_at - interval '1 day'"
        " WHERE id = ANY(CAST(:ids AS uuid[]))",
        ids=moved,
    )
    stack.database.run(
        "UPDATE turn_feedback SET updated_at = updated_at - interval '1 day'"
        " WHERE turn_id = CAST(:id AS uuid)",
        id=owner_answers[0]["turn_id"],
    )

    owner_turns = turns_of(owner)
    vera_turns = turns_of(vera.api)
    every = {**owner_turns, **vera_turns}
    in_kb = [t for t in every.values() if kb["id"] in t["kb_ids"]]
    today = datetime.now(UTC).date()
    since, until = (today - timedelta(days=1)).isoformat(), (today + timedelta(days=1)).isoformat()

    # --- the whole workspace, both days -------------------------------------------------
    overview = analytics(owner, "overview", since=since, until=until)
    assert overview["workspace"] == "default" and overview["knowledge_base_id"] is None
    assert [d["day"] for d in overview["questions"]["per_day"]] == [since, today.isoformat()]
    assert_answers(overview, list(every.values()))
    assert_usage(overview["usage"], list(every.values()))
    models = {row["model"]: row for row in overview["usage"]["by_model"]}
    assert models.keys() == {LLM_MODEL, UNPRICED, SNAPSHOT}
    assert models[UNPRICED]["estimated_cost_usd"] is None
    assert overview["usage"]["unpriced_models"] == [UNPRICED]
    answered = [t for t in every.values() if t["status"] == "answered"]
    first_tokens = [t["first_token_ms"] for t in answered]
    assert overview["first_token_ms"]["p50"] == pytest.approx(percentile_cont(first_tokens, 0.5))
    assert overview["first_token_ms"]["p95"] == pytest.approx(percentile_cont(first_tokens, 0.95))
    ups = sum(r == "up" for _, _, r in ratings)
    downs = sum(r == "down" for _, _, r in ratings)
    assert overview["feedback"] == {
        "positive": ups,
        "negative": downs,
        "ratio": ups / (ups + downs),
    }
    # Content: every document of the workspace, their active versions' pages and chunks.
    details = [owner.document(d["id"]) for d in documents.values()]
    other_docs = body_of(owner.get(f"/v1/knowledge-bases/{other_kb['id']}/documents"))
    details += [owner.document(d["id"]) for d in other_docs["documents"]]
    content = overview["content"]
    assert content["documents"] == content["ready_documents"] == len(details) == 4
    assert content["added_documents"] == 4 and content["archived_documents"] == 0
    assert content["pages"] == sum(d["page_count"] or 0 for d in details)
    assert content["chunks"] == sum(d["chunk_count"] for d in details)
    # Most cited: every citation of every answered turn, counted per document.
    cited: Counter[str] = Counter()
    answers_citing: Counter[str] = Counter()
    for turn in answered:
        cited.update(c["document_id"] for c in turn["citations"])
        answers_citing.update({c["document_id"] for c in turn["citations"]})
    ranked = sorted(cited, key=lambda d: (-cited[d], -answers_citing[d], d))
    most = overview["most_cited_documents"]
    assert [m["document_id"] for m in most] == ranked[:10]
    assert [(m["citations"], m["answers"]) for m in most] == [
        (cited[d], answers_citing[d]) for d in ranked[:10]
    ]
    filenames = {d["id"]: name for name, d in documents.items()}
    assert all(m["filename"] == filenames.get(m["document_id"], "other.txt") for m in most)
    # Nothing of the other workspace.
    text = str(overview)
    assert "secret" not in text and olga_kb["id"] not in text

    # --- today only: the moved turns and rating drop out ---------------------------------
    today_only = analytics(owner, "overview", since=today.isoformat(), until=until)
    todays = [t for t in every.values() if utc_day(t["created_at"]) == today]
    assert len(todays) == len(every) - len(moved)
    assert_answers(today_only, todays)
    assert_usage(today_only["usage"], todays)
    assert today_only["feedback"]["positive"] == ups - 1

    # --- one knowledge base --------------------------------------------------------------
    by_kb = analytics(owner, "overview", since=since, until=until, knowledge_base_id="analytics")
    assert by_kb["knowledge_base_id"] == kb["id"]
    assert_answers(by_kb, in_kb)
    assert by_kb["content"]["documents"] == 3

    # --- the viewer's own figures ----------------------------------------------------------
    mine = analytics(vera.api, "me", since=since, until=until)
    assert mine["principal"] == vera.id
    assert_answers(mine, list(vera_turns.values()))
    assert_usage(mine["usage"], list(vera_turns.values()))
    assert mine["feedback"] == {"positive": 0, "negative": 1, "ratio": 0.0}
    owner_mine = analytics(owner, "me", since=since, until=until)
    assert owner_mine["questions"]["total"] == len(owner_turns)
    assert owner_mine["feedback"] == {"positive": 2, "negative": 1, "ratio": 2 / 3}

    # --- negative feedback, newest first, one per page ------------------------------------
    pages: list[dict[str, Any]] = []
    token = None
    while True:
        query = {"since": since, "until": until, "limit": "1"}
        if token:
            query["page_token"] = token
        page = analytics(owner, "feedback", **query)
        pages += page["feedback"]
        token = page["next_page_token"]
        if token is None:
            break
    downs_given = [(api, answer) for api, answer, r in ratings if r == "down"]
    assert len(pages) == len(downs_given) == 2
    assert [p["rated_at"] for p in pages] == sorted((p["rated_at"] for p in pages), reverse=True)
    by_question = {p["question"]: p for p in pages}
    for api, answer in downs_given:
        turn = every[answer["turn_id"]]
        item = by_question[turn["question"]]
        assert item["comment"] == f"down for {answer['turn_id'][:8]}"
        assert item["citations"] == turn["citations"]
        assert turn["answer"].startswith(item["answer_excerpt"]) and item["answer_excerpt"]
        assert item["rated_by"] == (
            vera.id if api is vera.api else body_of(owner.get("/v1/me"))["principal"]["id"]
        )
    assert "secret" not in str(pages)

    # --- a deleted document's name never shows -------------------------------------------
    top = most[0]
    deleted = owner.delete(f"/v1/documents/{top['document_id']}")
    assert deleted.status_code == 204
    after = analytics(owner, "overview", since=since, until=until)
    assert top["document_id"] not in [m["document_id"] for m in after["most_cited_documents"]]
    assert top["filename"] not in str(after) and top["filename"] not in str(
        analytics(owner, "feedback", since=since, until=until)
    )


def test_roles_ranges_and_parameters(clean_stack: LocalStack) -> None:
    stack = clean_stack
    owner = Api(stack)
    vera = invite(owner, stack, "default", "vera", "viewer")
    ada = invite(owner, stack, "default", "ada", "admin")
    stranger = signed_in(stack, "stranger")
    olga = workspace_owner(stack, "olga", "elsewhere")
    foreign = olga.api.create_kb("foreign")
    for path in ("overview", "feedback"):
        assert vera.api.get(f"/v1/analytics/{path}").status_code == 403
        assert ada.api.get(f"/v1/analytics/{path}").status_code == 200
        assert owner.get(f"/v1/analytics/{path}").status_code == 200
        assert stranger.api.get(f"/v1/analytics/{path}").status_code == 403
    assert vera.api.get("/v1/analytics/me").status_code == 200
    assert stranger.api.get("/v1/analytics/me").status_code == 403
    # Another workspace's knowledge base is as unknown as a missing one.
    missing = owner.get("/v1/analytics/overview", query_string={"knowledge_base_id": foreign["id"]})
    assert missing.status_code == 404

    default = analytics(owner, "overview")
    days = default["questions"]["per_day"]
    today = datetime.now(UTC).date()
    assert len(days) == 30 and days[-1]["day"] == today.isoformat()
    assert default["since"].startswith((today - timedelta(days=29)).isoformat())
    assert default["latency_ms"] == {"p50": None, "p95": None}
    assert default["feedback"]["ratio"] is None and default["not_in_documents"]["rate"] is None

    # A datetime with an offset is read in UTC; a date means its midnight UTC.
    shifted = analytics(owner, "overview", since="2026-01-01T02:00:00+02:00", until="2026-01-03")
    assert shifted["since"].startswith("2026-01-01T00:00:00")
    assert [d["day"] for d in shifted["questions"]["per_day"]] == ["2026-01-01", "2026-01-02"]

    for query, code in (
        ({"since": "2026-01-02", "until": "2026-01-01"}, "invalid_range"),
        ({"since": "2026-01-01", "until": "2026-01-01"}, "invalid_range"),
        ({"since": "2020-01-01", "until": "2026-01-01"}, "range_too_long"),
        ({"since": "yesterday"}, "invalid_request"),
        ({"since": "1700000000"}, "invalid_request"),
        ({"until": "0001-01-01"}, "invalid_request"),
    ):
        response = owner.get("/v1/analytics/overview", query_string=query)
        assert response.status_code == 400, (query, response.get_data(as_text=True))
        assert body_of(response)["error"]["code"] == code, query
    for token in ("not-base64!", "eyJhIjogMX0=", "bnVsbA=="):
        response = owner.get("/v1/analytics/feedback", query_string={"page_token": token})
        assert response.status_code == 400, token
        assert body_of(response)["error"]["code"] == "invalid_page_token"
    assert owner.get("/v1/analytics/feedback", query_string={"limit": "0"}).status_code == 400
