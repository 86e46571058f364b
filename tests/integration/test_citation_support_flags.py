"""A model's answer citing a passage for a number the passage lacks is flagged.

The answer comes from the local OpenAI-compatible server through the real client; the
flag appears in the JSON answer, the SSE ``citations`` and ``done`` events and the
stored turn.
"""

from __future__ import annotations

import json
from typing import Any

from scripts.localstack.stack import LocalStack
from tests.support.api import Api, body_of
from tests.support.openai_server import OpenAIServer

REPORT = (
    "Harbor Logistics reported revenue of $12.5 million for the quarter ended June 30, 2024."
    " Vessel arrivals rose 4% to 310 during the quarter."
)
QUESTION = "What revenue did Harbor Logistics report for the quarter?"


def _sse(text: str) -> dict[str, list[Any]]:
    events: dict[str, list[Any]] = {}
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            events.setdefault(lines["event"], []).append(json.loads(lines["data"]))
    return events


def test_a_number_missing_from_the_passage_flags_the_citation(
    clean_stack: LocalStack, llm: OpenAIServer
) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("harbor")
    api.ingest(kb["id"], "harbor.md", REPORT.encode())
    ask = {"knowledge_base_ids": [kb["id"]], "question": QUESTION}

    llm.script_chat("Harbor Logistics reported revenue of $12.5 million for the quarter [1].")
    good = body_of(api.post("/v1/ask", json=ask))
    [cited] = good["citations"]
    assert cited["supported"] is True and cited["support"]["missing_numbers"] == []
    assert good["unsupported_citations"] == 0

    llm.script_chat("Harbor Logistics reported revenue of $14.2 million for the quarter [1].")
    bad = body_of(api.post("/v1/ask", json=ask))
    [flagged] = bad["citations"]
    assert flagged["supported"] is False
    assert flagged["support"]["missing_numbers"] == ["$14.2 million"]
    assert flagged["support"]["overlap"] >= 0.5  # the words agree, the number does not
    assert bad["unsupported_citations"] == 1
    stored = body_of(api.get(f"/v1/turns/{bad['turn_id']}/citations"))["citations"]
    assert stored == bad["citations"]

    llm.script_chat("Vessel arrivals rose 9% to 310 [1].")
    streamed = api.post("/v1/ask", json=ask, headers={"Accept": "text/event-stream"})
    events = _sse(streamed.get_data(as_text=True))
    [sent] = events["citations"][0]["citations"]
    assert sent["supported"] is False and sent["support"]["missing_numbers"] == ["9%"]
    [done] = events["done"]
    assert done["citations"] == [sent] and done["unsupported_citations"] == 1
