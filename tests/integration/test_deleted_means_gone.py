"""Deleted means gone: a deleted document's text leaves chat history and the prompt.

Answers come from the local OpenAI-compatible server (``llm``), scripted to quote and
cite both documents, so the stored answer and snippets hold a phrase only document A
contains; after A is deleted, no response and no later prompt may hold it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from scripts.localstack.stack import LocalStack
from shared.store.history import REDACTED_ANSWER
from tests.support.api import Api, body_of
from tests.support.openai_server import OpenAIServer, RecordedRequest

CHAT = "/v1/chat/completions"
MARKER = "quillfeather orchids bloom only under violet moonlight"
ORCHIDS = f"""# Orchid care

The {MARKER} and need misting every morning.
Orchid roots rot when the pot holds standing water.
"""
FERNS = """# Fern care

Boston ferns grow best in indirect light with humid air around the fronds.
Water the ferns when the top of the soil feels dry.
"""
QUESTION = "how should orchids and ferns be cared for?"


def _sources(request: RecordedRequest) -> dict[int, str]:
    """The numbered sources of the prompt's last message: number -> its text."""
    content = request.json["messages"][-1]["content"]
    pieces = re.split(r"^\[(\d+)\] ", content, flags=re.MULTILINE)
    return {int(number): text for number, text in zip(pieces[1::2], pieces[2::2], strict=True)}


def _quote_both(request: RecordedRequest) -> str:
    """Quote the orchid source and the fern source with their markers, as a model would."""
    answer: list[str] = []
    for number, text in _sources(request).items():
        if "quillfeather" in text and not any("quillfeather" in part for part in answer):
            answer.append(f"The {MARKER} [{number}].")
        elif "Boston ferns" in text and not any("Boston" in part for part in answer):
            answer.append(f"Boston ferns grow best in indirect light [{number}].")
    return " ".join(answer) or "Nothing fits."


def _ask(api: Api, kb_ids: list[str], question: str, **extra: Any) -> dict[str, Any]:
    response = api.post(
        "/v1/ask", json={"knowledge_base_ids": kb_ids, "question": question, **extra}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return dict(response.json or {})


def _sent_to_model(llm: OpenAIServer) -> str:
    return json.dumps([request.json["messages"] for request in llm.requests_to(CHAT)])


def _setup(stack: LocalStack, api: Api, llm: OpenAIServer) -> dict[str, Any]:
    garden = api.create_kb("garden")["id"]
    orchids = api.upload(garden, "orchids.md", ORCHIDS.encode())["document_id"]
    ferns = api.upload(garden, "ferns.md", FERNS.encode())["document_id"]
    stack.wait_idle(180)
    llm.script_chat(_quote_both)
    first = _ask(api, [garden], QUESTION)
    cited = {citation["document_id"]: citation for citation in first["citations"]}
    # The answer quotes A and cites both: without redaction its text would stay.
    assert set(cited) == {orchids, ferns}, first
    assert MARKER in first["answer"] and MARKER in json.dumps(cited[orchids]).lower()
    return {"kb": garden, "orchids": orchids, "ferns": ferns, "first": first, "cited": cited}


def test_deleting_a_document_redacts_its_citations_and_keeps_it_out_of_prompts(
    clean_stack: LocalStack, llm: OpenAIServer
) -> None:
    stack, api = clean_stack, Api(clean_stack)
    setup = _setup(stack, api, llm)
    first, cited = setup["first"], setup["cited"]
    session_id, turn_id = first["session_id"], first["turn_id"]
    a_citation, b_citation = cited[setup["orchids"]], cited[setup["ferns"]]

    assert api.delete(f"/v1/documents/{setup['orchids']}").status_code in (200, 202, 204)

    turns = api.get(f"/v1/sessions/{session_id}/turns")
    assert turns.status_code == 200
    assert "quillfeather" not in turns.get_data(as_text=True).lower()
    [turn] = body_of(turns)["turns"]
    assert turn["has_redacted_citations"] is True
    assert turn["answer"] == REDACTED_ANSWER
    citations = api.get(f"/v1/turns/{turn_id}/citations")
    assert "quillfeather" not in citations.get_data(as_text=True).lower()
    stored = {c["n"]: c for c in body_of(citations)["citations"]}
    assert turn["citations"] == body_of(citations)["citations"]
    # A's citation keeps its number and ids, marked; no text, title or file name.
    assert stored[a_citation["n"]] == {
        "n": a_citation["n"],
        "chunk_id": a_citation["chunk_id"],
        "document_id": a_citation["document_id"],
        "version_id": a_citation["version_id"],
        "kb_id": a_citation["kb_id"],
        "redacted": True,
        "reason": "document_deleted",
    }
    assert stored[b_citation["n"]] == b_citation  # B is untouched

    viewer = api.get(f"/v1/citations/{a_citation['chunk_id']}/viewer")
    assert viewer.status_code == 200
    assert body_of(viewer) == stored[a_citation["n"]]
    assert body_of(api.get(f"/v1/citations/{b_citation['chunk_id']}/viewer"))["text"]

    # Nothing of A is left in the rows either (standalone questions, partial answers).
    rows = stack.database.scalar("SELECT json_agg(t)::text FROM chat_turns t")
    assert "quillfeather" not in rows.lower()

    llm.reset()
    follow_up = _ask(api, [setup["kb"]], "and what about watering?", session_id=session_id)
    regenerated = api.post(f"/v1/turns/{turn_id}/regenerate")
    assert regenerated.status_code == 200, regenerated.get_data(as_text=True)
    assert len(llm.requests_to(CHAT)) >= 2
    assert "quillfeather" not in _sent_to_model(llm).lower()
    assert "quillfeather" not in json.dumps([follow_up, body_of(regenerated)]).lower()
    assert {c["document_id"] for c in body_of(regenerated)["citations"]} <= {setup["ferns"]}


def test_deleting_the_knowledge_base_leaves_no_text_of_its_documents_in_history(
    clean_stack: LocalStack, llm: OpenAIServer
) -> None:
    stack, api = clean_stack, Api(clean_stack)
    setup = _setup(stack, api, llm)
    session_id, turn_id = setup["first"]["session_id"], setup["first"]["turn_id"]
    other = api.create_kb("other")["id"]
    api.upload(other, "ferns.md", FERNS.encode())
    stack.wait_idle(180)

    assert api.delete(f"/v1/knowledge-bases/{setup['kb']}").status_code in (200, 202, 204)

    # The sessions that asked it went with it; nothing of its documents is stored.
    assert api.get(f"/v1/sessions/{session_id}/turns").status_code == 404
    assert api.get(f"/v1/turns/{turn_id}/citations").status_code == 404
    a_chunk = setup["cited"][setup["orchids"]]["chunk_id"]
    assert api.get(f"/v1/citations/{a_chunk}/viewer").status_code == 404
    rows = stack.database.scalar("SELECT coalesce(json_agg(t)::text, '') FROM chat_turns t")
    assert "quillfeather" not in rows.lower()
    llm.reset()
    follow_up = api.post(
        "/v1/ask",
        json={"knowledge_base_ids": [other], "question": "and watering?", "session_id": session_id},
    )
    assert follow_up.status_code == 404
    fresh = _ask(api, [other], QUESTION)
    assert "quillfeather" not in (_sent_to_model(llm) + json.dumps(fresh)).lower()
