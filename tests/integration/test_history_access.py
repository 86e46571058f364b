"""Chat history is read through the caller's access now, not the access they had.

A turn answered from a knowledge base whose grant was revoked afterwards (or whose
workspace the caller left) is no longer readable: not in the session's turns, not by
id (citations, feedback, regenerate), not in a follow-up's history, and the session
list no longer names that knowledge base.
"""

from __future__ import annotations

from typing import Any

from scripts.localstack.stack import LocalStack
from tests.support.api import Api, body_of
from tests.support.openai_server import OpenAIServer
from tests.support.principals import Caller, invite

WORKSPACE = "default"
HARBOUR = "The harbour log says the zqxharbour ferry leaves at dawn every Tuesday."
ORCHARD = "The orchard log says the zqxorchard pears ripen late in September."


def _setup(stack: LocalStack) -> tuple[Api, dict[str, Any], dict[str, Any], Caller]:
    owner = Api(stack)
    harbour = owner.create_kb("harbour")
    orchard = owner.create_kb("orchard")
    owner.ingest(harbour["id"], "harbour.txt", HARBOUR.encode())
    owner.ingest(orchard["id"], "orchard.txt", ORCHARD.encode())
    lim = invite(owner, stack, WORKSPACE, "lim", "viewer", limited=True)
    for kb in (harbour, orchard):
        granted = owner.put(
            f"/v1/knowledge-bases/{kb['id']}/grants/{lim.id}", json={"access": "read"}
        )
        assert granted.status_code == 200, granted.get_data(as_text=True)
    return owner, harbour, orchard, lim


def _ask(caller: Caller, kb: dict[str, Any], question: str, session: str | None = None) -> Any:
    body: dict[str, Any] = {"knowledge_base_ids": [kb["id"]], "question": question}
    if session:
        body["session_id"] = session
    response = caller.api.post("/v1/ask", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return body_of(response)


def test_a_revoked_grant_hides_the_turns_that_came_from_its_knowledge_base(
    clean_stack: LocalStack,
) -> None:
    owner, harbour, orchard, lim = _setup(clean_stack)
    first = _ask(lim, harbour, "When does the ferry leave?")
    session = first["session_id"]
    second = _ask(lim, orchard, "When do the pears ripen?", session)
    assert "zqxorchard" in second["answer"]  # the extractive answer quotes the passage
    turns_path = f"/v1/sessions/{session}/turns"
    before = lim.api.get(turns_path)
    assert [t["id"] for t in body_of(before)["turns"]] == [first["turn_id"], second["turn_id"]]

    revoked = owner.delete(f"/v1/knowledge-bases/{orchard['id']}/grants/{lim.id}")
    assert revoked.status_code == 204

    after = lim.api.get(turns_path)
    assert after.status_code == 200
    assert [t["id"] for t in body_of(after)["turns"]] == [first["turn_id"]]
    assert "zqxorchard" not in after.get_data(as_text=True)
    assert "zqxharbour" in after.get_data(as_text=True)
    turn = f"/v1/turns/{second['turn_id']}"
    assert lim.api.get(f"{turn}/citations").status_code == 404
    assert lim.api.post(f"{turn}/feedback", json={"rating": "up"}).status_code == 404
    assert lim.api.post(f"{turn}/regenerate").status_code == 404
    assert lim.api.get(f"/v1/turns/{first['turn_id']}/citations").status_code == 200
    [listed] = body_of(lim.api.get("/v1/sessions"))["sessions"]
    assert listed["turn_count"] == 1 and orchard["id"] not in listed["knowledge_base_ids"]

    # Read-time scoping: granting again shows the turn again, unchanged.
    regranted = owner.put(
        f"/v1/knowledge-bases/{orchard['id']}/grants/{lim.id}", json={"access": "read"}
    )
    assert regranted.status_code == 200
    again = body_of(lim.api.get(turns_path))["turns"]
    assert [t["id"] for t in again] == [first["turn_id"], second["turn_id"]]


def test_a_member_who_left_reads_none_of_their_turns(clean_stack: LocalStack) -> None:
    owner, harbour, _, _ = _setup(clean_stack)
    vera = invite(owner, clean_stack, WORKSPACE, "vera", "viewer")
    asked = _ask(vera, harbour, "When does the ferry leave?")
    removed = owner.delete(f"/v1/workspaces/{WORKSPACE}/members/{vera.id}")
    assert removed.status_code == 204
    turns = vera.api.get(f"/v1/sessions/{asked['session_id']}/turns")
    assert "zqxharbour" not in turns.get_data(as_text=True)
    assert vera.api.get(f"/v1/turns/{asked['turn_id']}/citations").status_code == 404
    assert "zqxharbour" not in vera.api.get("/v1/sessions").get_data(as_text=True)


def test_a_follow_up_does_not_read_turns_from_a_revoked_knowledge_base(
    clean_stack: LocalStack, llm: OpenAIServer
) -> None:
    owner, harbour, orchard, lim = _setup(clean_stack)
    llm.script_chat("The ferry leaves at dawn [1].")
    first = _ask(lim, harbour, "When does the ferry leave?")
    llm.script_chat("The zqxorchard pears ripen late in September [1].")
    _ask(lim, orchard, "When do the pears ripen?", first["session_id"])
    owner.delete(f"/v1/knowledge-bases/{orchard['id']}/grants/{lim.id}")

    sent_before = len(llm.requests)
    llm.script_chat("On Tuesdays [1].")
    _ask(lim, harbour, "And on which day?", first["session_id"])
    prompts = [str(request.json) for request in llm.requests[sent_before:]]
    assert prompts and "ferry leaves at dawn" in " ".join(prompts)  # the history is sent
    assert not any("zqxorchard" in prompt for prompt in prompts)
