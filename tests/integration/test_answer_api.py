"""The answer API on the local stack: ask, retrieve, sessions, turns, feedback, scope.

No OPENAI_API_KEY is set here, so answers come from the extractive answerer; the
OpenAI path is covered against a local OpenAI-compatible server in test_answer_stream.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from scripts.localstack.stack import LocalStack
from shared.answering.service import NOT_IN_DOCUMENTS
from tests.support.api import Api, body_of
from tests.support.stack import wipe_stack

SOLAR = """# Solar panels

## Efficiency

Monocrystalline solar panels convert about 22 percent of sunlight into electricity.
Panel efficiency drops slightly as the cells get hotter in summer.

## Maintenance

Rinse the panels with water twice a year; dust reduces their output.
"""
BAKING = """# Sourdough baking

## Starter

Feed the sourdough starter with equal weights of flour and water every day.
A healthy starter doubles in size within eight hours.

## Baking

Bake the loaf at 250 degrees Celsius for twenty minutes with steam, then uncovered.
"""
GARDEN = """# Tomato garden

Tomatoes need six hours of direct sunlight and deep watering twice a week.
Stake the plants early so the stems do not break under the fruit.
"""
ROCKETS = """# Rockets

Orbital rockets burn liquid oxygen with kerosene or methane in their first stage.
"""


@pytest.fixture(scope="module")
def kbs(stack: LocalStack) -> Iterator[dict[str, Any]]:
    """Two knowledge bases: "energy" (solar, garden) and "kitchen" (baking, rockets)."""
    wipe_stack(stack)
    api = Api(stack)
    energy = api.create_kb("energy")
    kitchen = api.create_kb("kitchen")
    documents = {
        "solar": api.upload(energy["id"], "solar.md", SOLAR.encode()),
        "garden": api.upload(energy["id"], "garden.md", GARDEN.encode(), {"team": "outdoor"}),
        "baking": api.upload(kitchen["id"], "baking.md", BAKING.encode()),
        "rockets": api.upload(kitchen["id"], "rockets.md", ROCKETS.encode()),
    }
    stack.wait_idle(180)
    yield {
        "energy": energy["id"],
        "kitchen": kitchen["id"],
        **{name: accepted["document_id"] for name, accepted in documents.items()},
    }
    wipe_stack(stack)


def ask(api: Api, kb_ids: list[str], question: str, **extra: Any) -> dict[str, Any]:
    response = api.post(
        "/v1/ask", json={"knowledge_base_ids": kb_ids, "question": question, **extra}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return dict(response.json or {})


def test_ask_answers_from_the_documents_with_checked_citations(
    stack: LocalStack, kbs: dict[str, Any]
) -> None:
    api = Api(stack)
    body = ask(api, [kbs["energy"]], "How efficient are monocrystalline solar panels?")

    assert body["answer"].startswith("Extractive answer")
    assert "22 percent" in body["answer"]
    assert body["citations"], body
    first = body["citations"][0]
    assert first["document_id"] == kbs["solar"]
    assert first["filename"] == "solar.md"
    assert f"[{first['n']}]" in body["answer"]
    # The snippet is a stretch of the cited passage (whitespace collapsed, maybe elided).
    passage = stack.database.scalar("SELECT text FROM chunks WHERE id = :id", id=first["chunk_id"])
    assert first["snippet"].strip(" .…")[:60] in " ".join(passage.split())
    assert first["char_end"] > first["char_start"] >= 0
    assert isinstance(first["score"], float) and first["score"] > 0
    assert uuid.UUID(first["version_id"]) and first["chunk_id"] > 0
    assert body["usage"]["model"] == "extractive"
    assert uuid.UUID(body["turn_id"]) and uuid.UUID(body["session_id"])

    stored = api.get(f"/v1/turns/{body['turn_id']}/citations")
    assert stored.status_code == 200
    assert body_of(stored)["citations"] == body["citations"]


def test_a_question_scoped_to_one_knowledge_base_never_cites_another(
    stack: LocalStack, kbs: dict[str, Any]
) -> None:
    api = Api(stack)
    # Baking lives in "kitchen": asked in "energy", nothing from kitchen may come back.
    body = ask(api, [kbs["energy"]], "At what temperature should the sourdough loaf bake?")
    assert {c["kb_id"] for c in body["citations"]} <= {kbs["energy"]}
    passages = body_of(
        api.post(
            "/v1/retrieve",
            json={"knowledge_base_ids": [kbs["energy"]], "query": "sourdough starter flour water"},
        )
    )["passages"]
    assert passages and {p["kb_id"] for p in passages} == {kbs["energy"]}

    both = body_of(
        api.post(
            "/v1/retrieve",
            json={"knowledge_base_ids": [kbs["energy"], "kitchen"], "query": "sourdough starter"},
        )
    )["passages"]
    assert both[0]["document_id"] == kbs["baking"]


def test_retrieve_ranks_passages_and_applies_filters(
    stack: LocalStack, kbs: dict[str, Any]
) -> None:
    api = Api(stack)
    url = "/v1/retrieve"
    query = "tomatoes need direct sunlight and deep watering"
    ranked = body_of(api.post(url, json={"knowledge_base_ids": [kbs["energy"]], "query": query}))[
        "passages"
    ]
    assert ranked[0]["document_id"] == kbs["garden"]
    assert [p["score"] for p in ranked] == sorted((p["score"] for p in ranked), reverse=True)
    assert ranked[0]["text_score"] is not None and ranked[0]["vector_score"] is not None

    by_document = body_of(
        api.post(
            url,
            json={
                "knowledge_base_ids": [kbs["energy"]],
                "query": query,
                "filters": {"document_ids": [kbs["solar"]]},
            },
        )
    )["passages"]
    assert by_document and {p["document_id"] for p in by_document} == {kbs["solar"]}

    by_metadata = body_of(
        api.post(
            url,
            json={
                "knowledge_base_ids": [kbs["energy"]],
                "query": "solar panel efficiency",
                "filters": {"metadata": {"team": "outdoor"}},
            },
        )
    )["passages"]
    assert by_metadata and {p["document_id"] for p in by_metadata} == {kbs["garden"]}

    threshold = body_of(
        api.post(
            url,
            json={
                "knowledge_base_ids": [kbs["energy"]],
                "query": query,
                "filters": {"min_similarity": 0.99},
            },
        )
    )["passages"]
    assert threshold == []


def test_follow_up_questions_are_rewritten_with_the_session_history(
    stack: LocalStack, kbs: dict[str, Any]
) -> None:
    api = Api(stack)
    first = ask(api, [kbs["energy"]], "How should tomato plants be watered?")
    follow = ask(
        api, [kbs["energy"]], "And how much sunlight do they need?", session_id=first["session_id"]
    )
    assert follow["session_id"] == first["session_id"]
    assert any(c["document_id"] == kbs["garden"] for c in follow["citations"])

    turns = body_of(api.get(f"/v1/sessions/{first['session_id']}/turns"))["turns"]
    assert [t["number"] for t in turns] == [1, 2]
    assert turns[1]["question"] == "And how much sunlight do they need?"
    assert "tomato" in turns[1]["standalone_question"].lower()
    assert turns[1]["status"] == "answered" and turns[1]["answer"] == follow["answer"]

    sessions = body_of(api.get("/v1/sessions"))["sessions"]
    mine = next(s for s in sessions if s["id"] == first["session_id"])
    assert mine["turn_count"] == 2
    assert mine["title"] == "How should tomato plants be watered?"


def test_feedback_and_regenerate(stack: LocalStack, kbs: dict[str, Any]) -> None:
    api = Api(stack)
    body = ask(api, [kbs["kitchen"]], "How often should the sourdough starter be fed?")
    turn = body["turn_id"]

    assert api.post(f"/v1/turns/{turn}/feedback", json={"rating": "up"}).status_code == 200
    changed = api.post(f"/v1/turns/{turn}/feedback", json={"rating": "down", "comment": "vague"})
    assert changed.status_code == 200
    turns = body_of(api.get(f"/v1/sessions/{body['session_id']}/turns"))["turns"]
    assert turns[0]["feedback"] == {"rating": "down", "comment": "vague"}
    bad = api.post(f"/v1/turns/{turn}/feedback", json={"rating": "meh"})
    assert bad.status_code == 400 and body_of(bad)["error"]["code"] == "invalid_rating"

    again = api.post(f"/v1/turns/{turn}/regenerate")
    assert again.status_code == 200
    regenerated = body_of(again)
    assert regenerated["session_id"] == body["session_id"]
    assert regenerated["turn_id"] != turn
    assert regenerated["citations"] == body["citations"]
    turns = body_of(api.get(f"/v1/sessions/{body['session_id']}/turns"))["turns"]
    assert [t["regenerated_from"] for t in turns] == [None, turn]


def test_a_question_the_documents_cannot_answer_says_so(
    stack: LocalStack, kbs: dict[str, Any]
) -> None:
    api = Api(stack)
    body = ask(api, [kbs["energy"]], "What did Tesla report as its quarterly revenue?")
    assert body["answer"] == NOT_IN_DOCUMENTS
    assert body["citations"] == []


def test_only_the_active_version_is_retrieved(stack: LocalStack, kbs: dict[str, Any]) -> None:
    api = Api(stack)
    kb = api.create_kb("versions-answer")
    api.ingest(kb["id"], "policy.md", b"# Policy\n\nThe office opens at seven in the morning.")
    api.ingest(kb["id"], "policy.md", b"# Policy\n\nThe office opens at nine in the morning.")
    passages = body_of(
        api.post(
            "/v1/retrieve",
            json={"knowledge_base_ids": [kb["id"]], "query": "when does the office open"},
        )
    )["passages"]
    assert len(passages) == 1
    assert "nine" in passages[0]["text"] and "seven" not in passages[0]["text"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"knowledge_base_ids": ["energy"], "question": "   "}, 400, "invalid_question"),
        ({"knowledge_base_ids": ["energy"]}, 400, "invalid_question"),
        ({"knowledge_base_ids": ["nope"], "question": "hi"}, 404, "knowledge_base_not_found"),
        ({"knowledge_base_ids": [], "question": "hi"}, 400, "invalid_request"),
        (
            {"knowledge_base_ids": ["energy"], "question": "hi", "top_k": 0},
            400,
            "invalid_parameter",
        ),
        (
            {"knowledge_base_ids": ["energy"], "question": "hi", "top_k": 51},
            400,
            "invalid_parameter",
        ),
        ({"knowledge_base_ids": ["energy"], "question": "x" * 4001}, 400, "question_too_long"),
        ({"knowledge_base_ids": ["energy"], "question": "税" * 1000}, 400, "question_too_long"),
        ({"knowledge_base_ids": ["energy"], "question": "hi", "colour": 1}, 400, "invalid_request"),
        (
            {"knowledge_base_ids": ["energy"], "question": "hi", "session_id": str(uuid.uuid4())},
            404,
            "session_not_found",
        ),
        (
            {
                "knowledge_base_ids": ["energy"],
                "question": "hi",
                "filters": {"document_ids": ["x"]},
            },
            400,
            "invalid_parameter",
        ),
    ],
)
def test_bad_questions_get_a_clear_4xx(
    stack: LocalStack, kbs: dict[str, Any], body: dict[str, Any], status: int, code: str
) -> None:
    api = Api(stack)
    turns_before = stack.database.scalar("SELECT count(*) FROM chat_turns")
    response = api.post("/v1/ask", json=body)
    assert response.status_code == status, response.get_data(as_text=True)
    assert body_of(response)["error"]["code"] == code
    assert body_of(response)["error"]["message"]
    assert stack.database.scalar("SELECT count(*) FROM chat_turns") == turns_before


def test_bad_stream_and_lookup_requests(stack: LocalStack, kbs: dict[str, Any]) -> None:
    api = Api(stack)
    cases = [
        (api.get("/v1/ask/stream?q=hi"), 400, "invalid_parameter"),
        (api.get("/v1/ask/stream?knowledge_base_id=energy"), 400, "invalid_question"),
        (api.get("/v1/ask/stream?knowledge_base_id=energy&q=hi&top_k=x"), 400, "invalid_parameter"),
        (api.get(f"/v1/turns/{uuid.uuid4()}/citations"), 404, "turn_not_found"),
        (api.get("/v1/turns/not-a-uuid/citations"), 404, "turn_not_found"),
        (api.get(f"/v1/sessions/{uuid.uuid4()}/turns"), 404, "session_not_found"),
        (
            api.post("/v1/ask", data=b"{not json", content_type="application/json"),
            400,
            "invalid_json",
        ),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.get_data(as_text=True)
        assert body_of(response)["error"]["code"] == code


def test_citation_viewer_locates_a_cited_passage(stack: LocalStack, kbs: dict[str, Any]) -> None:
    api = Api(stack)
    body = ask(api, [kbs["energy"]], "How efficient are monocrystalline solar panels?")
    citation = body["citations"][0]
    viewer = api.get(f"/v1/citations/{citation['chunk_id']}/viewer")
    assert viewer.status_code == 200
    where = body_of(viewer)
    assert where["kind"] == "text" and where["pages"] == []
    assert (where["char_start"], where["char_end"]) == (
        citation["char_start"],
        citation["char_end"],
    )
    assert "22 percent" in where["text"]
    for missing in ("999999999", "abc"):
        response = api.get(f"/v1/citations/{missing}/viewer")
        assert response.status_code == 404
        assert body_of(response)["error"]["code"] == "citation_not_found"
