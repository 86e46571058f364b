"""Streams check access when they run, not only when they were asked for.

The stream of a document's events can stay open for minutes; a grant revoked (or a
membership removed) meanwhile ends it before the next event goes out (the pipeline is
driven by hand, ``recorder``, so the events arrive exactly when the test says). A
stream ticket opens a stream with the role its holder has when it is used.
"""

from __future__ import annotations

from werkzeug.test import Client

from scripts.localstack.stack import LocalStack
from shared.pipeline.steps import parse_version
from tests.support.api import Api, body_of
from tests.support.pipeline import TEXT_V1, Recorder
from tests.support.principals import api_key, invite


def test_a_revoked_grant_ends_the_progress_stream_before_the_next_event(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    owner = Api(clean_stack)
    kb = owner.create_kb("progress")
    lim = invite(owner, clean_stack, "default", "lim", "viewer", limited=True)
    grants = f"/v1/knowledge-bases/{kb['id']}/grants/{lim.id}"
    assert owner.put(grants, json={"access": "read"}).status_code == 200
    accepted = owner.upload(kb["id"], "notes.md", TEXT_V1.encode())

    response = lim.api.get(f"/v1/documents/{accepted['document_id']}/events?timeout=5")
    assert response.status_code == 200
    stream = response.iter_encoded()
    opened = [next(stream), next(stream)]  # the retry hint, then the first event
    assert b"event: received" in opened[1], opened

    assert owner.delete(grants).status_code == 204
    assert parse_version(clean_stack.runtime, accepted["version_id"])
    rest = b"".join(stream)
    assert b"event: parsing" not in rest and b"event: chunking" not in rest, rest

    # Someone who may still read it sees the progress the stream withheld.
    seen = owner.get(f"/v1/documents/{accepted['document_id']}/events?timeout=1")
    assert b"event: parsing" in seen.get_data()


def test_a_stream_ticket_carries_no_role_a_removal_or_revocation_took_away(
    clean_stack: LocalStack,
) -> None:
    owner = Api(clean_stack)
    kb = owner.create_kb("tickets")
    document = owner.ingest(kb["id"], "notes.md", TEXT_V1.encode())
    events = f"/v1/documents/{document['id']}/events"
    vera = invite(owner, clean_stack, "default", "vera", "viewer")
    key = api_key(owner, clean_stack, "default", "reader", "viewer")

    def ticket(api: Api) -> str:
        issued = api.post("/v1/stream-tickets", json={"path": events})
        assert issued.status_code == 201, issued.get_data(as_text=True)
        return str(body_of(issued)["ticket"])

    still = ticket(vera.api)
    assert Client(clean_stack.app).get(events, query_string={"ticket": still}).status_code == 200

    # Tickets issued before the membership was removed, or the key revoked.
    held, key_held = ticket(vera.api), ticket(key.api)
    assert owner.delete(f"/v1/workspaces/default/members/{vera.id}").status_code == 204
    assert owner.delete(f"/v1/workspaces/default/api-keys/{key.id[4:]}").status_code == 204
    client = Client(clean_stack.app)
    assert client.get(events, query_string={"ticket": held}).status_code == 404
    refused = client.get(events, query_string={"ticket": key_held})
    assert refused.status_code == 401 and body_of(refused)["error"]["code"] == "api_key_revoked"
