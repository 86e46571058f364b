"""An open progress stream checks access again before each event it sends.

The stream of a document's events can stay open for minutes; a grant revoked (or a
membership removed) meanwhile ends it before the next event goes out. The pipeline is
driven by hand (``recorder``), so the events arrive exactly when the test says.
"""

from __future__ import annotations

from scripts.localstack.stack import LocalStack
from shared.pipeline.steps import parse_version
from tests.support.api import Api
from tests.support.pipeline import TEXT_V1, Recorder
from tests.support.principals import invite


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
