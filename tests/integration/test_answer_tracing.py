"""The spans of an answer (shared/tracing.py), as an SDK tracer provider records them.

Each stage of ``POST /v1/ask`` is one span, in the order the stages run; every database
statement is one ``ragline.db.statement`` span nested in the stage that ran it, whose
round trips follow the protocol used (simple 1, prepared 2 then 1, unnamed 3). The
answer-overhead benchmark reads the same spans (its ``breakdown``).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest

from scripts.bench.answer_overhead import breakdown
from scripts.localstack.stack import LocalStack
from shared.db.connection import copy_id_vectors
from tests.support.api import Api
from tests.support.openai_server import OpenAIServer
from tests.support.stack import wipe_stack
from tests.support.tracing import ragline_spans, span_recorder

NOTES = """# Heat pumps

## Efficiency

A heat pump moves three to four units of heat for each unit of electricity it uses.
Its efficiency falls as the outdoor air gets colder in winter.

## Noise

The outdoor unit of a heat pump hums at about forty decibels.
"""
ANSWER = "A heat pump moves three to four units of heat per unit of electricity [1]."

FIRST_STAGES = [
    "ragline.authenticate",
    "ragline.knowledge_bases.resolve",
    "ragline.retrieval",
    "ragline.turn.start",
    "ragline.generation.prompt",
    "ragline.generation.stream",
    "ragline.citations",
    "ragline.turn.finish",
]
RETRIEVAL_PARTS = [
    "ragline.retrieval.scope",
    "ragline.retrieval.routing",
    "ragline.retrieval.search",
    "ragline.retrieval.embed",
    "ragline.embeddings.compute",
]


@pytest.fixture(scope="module")
def kb(stack: LocalStack) -> Iterator[str]:
    wipe_stack(stack)
    api = Api(stack)
    created = api.create_kb("tracing")
    api.ingest(created["id"], "heat-pumps.md", NOTES.encode())
    yield str(created["id"])
    wipe_stack(stack)


def _attributes(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def _top_level(spans: list[Any]) -> list[str]:
    """Names of the stage spans not nested in another stage, in start order.

    The function's own span (``ragline.function.answer``) holds them all: not a stage.
    """
    ids = {span.context.span_id for span in spans if not span.name.startswith("ragline.function.")}
    return [
        span.name
        for span in spans
        if span.parent is None or span.parent.span_id not in ids
        if span.name != "ragline.db.statement" and not span.name.startswith("ragline.function.")
    ]


def _children(spans: list[Any], parent: str) -> list[str]:
    [outer] = [span for span in spans if span.name == parent]
    inside = {outer.context.span_id}
    found = []
    for span in spans:  # start order: a parent starts before its children
        if span.parent is not None and span.parent.span_id in inside:
            inside.add(span.context.span_id)
            if span.name != "ragline.db.statement":
                found.append(span.name)
    return found


def test_an_ask_emits_its_stages_in_order_and_one_span_per_statement(
    stack: LocalStack, kb: str, llm: OpenAIServer
) -> None:
    llm.script_chat(lambda request: ANSWER if (request.json or {}).get("stream") else "heat pump")
    api = Api(stack)
    recorder = span_recorder()
    question = {"knowledge_base_ids": [kb], "question": "How efficient is a heat pump?"}
    response = api.post("/v1/ask", json=question)
    assert response.status_code == 200, response.get_data(as_text=True)
    first = ragline_spans(recorder)
    assert _top_level(first) == FIRST_STAGES
    assert _children(first, "ragline.retrieval") == RETRIEVAL_PARTS
    stream = next(span for span in first if span.name == "ragline.generation.stream")
    assert _attributes(stream)["ragline.generator"] == "llm"
    assert _attributes(stream)["ragline.deltas"] >= 1
    stream_ms = ((stream.end_time or 0) - (stream.start_time or 0)) / 1e6
    assert 0 < _attributes(stream)["ragline.model_wait_ms"] <= stream_ms

    statements = [span for span in first if span.name == "ragline.db.statement"]
    assert statements, "the ask ran statements"
    ids = {span.context.span_id for span in first}
    for statement in statements:
        # Every statement belongs to a stage: none runs outside the spans.
        assert statement.parent is not None and statement.parent.span_id in ids
        attributes = _attributes(statement)
        protocol, prepared = attributes["ragline.db.protocol"], attributes["ragline.db.prepared"]
        expected = {"simple": 1, "unnamed": 3, "prepared": 2 if prepared else 1}[protocol]
        assert attributes["ragline.db.round_trips"] == expected
        assert attributes["db.system.name"] == "postgresql"

    # A follow-up: the session's history, then the rewrite and its model call.
    session_id = (response.json or {})["session_id"]
    recorder.clear()
    follow_up = {"knowledge_base_ids": [kb], "question": "And in winter?", "session_id": session_id}
    response = api.post("/v1/ask", json=follow_up)
    assert response.status_code == 200, response.get_data(as_text=True)
    later = ragline_spans(recorder)
    assert _top_level(later) == [
        *FIRST_STAGES[:2],
        "ragline.history.read",
        "ragline.rewrite",
        *FIRST_STAGES[2:],
    ]
    assert _children(later, "ragline.rewrite") == ["ragline.rewrite.model"]

    # What the benchmark makes of them.
    timings = breakdown(later)
    assert timings["statements"] == len([s for s in later if s.name == "ragline.db.statement"])
    assert timings["round_trips"] >= timings["statements"]
    for stage in ("resolve_kb", "history_read", "rewrite", "retrieval", "turn_start"):
        assert timings[stage] > 0, stage
    assert timings["model_call"] > 0


def test_statement_spans_count_round_trips_by_protocol(stack: LocalStack) -> None:
    recorder = span_recorder()
    sql = "SELECT :value::int + 0 AS traced_statement"
    with stack.database.session() as session:
        session.run("SELECT 1")
        session.run(sql, value=1)
        session.run(sql, value=2)
        with session.transaction():
            session.run("CREATE TEMP TABLE traced_copy (id bigint, v vector(2))")
            data = io.BytesIO(copy_id_vectors([1], [[0.5, 0.25]]))
            session.run("COPY traced_copy FROM STDIN (FORMAT binary)", stream=data)
            session.run("DROP TABLE traced_copy")
    spans = [s for s in ragline_spans(recorder) if s.name == "ragline.db.statement"]
    seen = [
        tuple(
            _attributes(s)[key]
            for key in (
                "db.operation.name",
                "ragline.db.protocol",
                "ragline.db.prepared",
                "ragline.db.round_trips",
            )
        )
        for s in spans
    ]
    assert seen == [
        ("SELECT", "simple", False, 1),
        ("SELECT", "prepared", True, 2),
        ("SELECT", "prepared", False, 1),
        ("BEGIN", "simple", False, 1),
        ("CREATE", "simple", False, 1),
        ("COPY", "unnamed", False, 3),
        ("DROP", "simple", False, 1),
        ("COMMIT", "simple", False, 1),
    ]
