"""Governance on the local stack: approval, archiving, edits, file links, deletes.

Every read path (retrieve, ask as JSON and as SSE, the citation viewer) is driven
through the HTTP API as each role; deletes are checked by counting every table's rows
and every bucket's objects before and after.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from scripts.localstack.stack import LocalStack
from shared.models import EmbedTask
from shared.pipeline.ingest import ingest_finalized
from shared.pipeline.steps import chunk_version, embed_batch, index_version, parse_version
from shared.retrieval.search import RetrievalRequest, route_documents
from shared.runtime import Runtime
from shared.store.scope import Scope, compile_scope
from shared.store.search import profile_matches, scope_chunk_count
from tests.support.api import Api, all_chunks, body_of, token_for
from tests.support.pipeline import Recorder, store_version

REFUNDS_30 = "Refund policy. Customers may ask for a refund within 30 days of purchase."
REFUNDS_60 = "Refund policy. Customers may ask for a refund within 60 days of purchase."
ZEBRA = "Zebra warranty. The striped zebra warranty covers hooves and manes for ten years."
PENDING = "Quokka onboarding. Every quokka mascot joins the onboarding parade on Mondays."
GARDEN = "Tomato plants need six hours of sunlight every day to ripen."


def invite(owner: Api, stack: LocalStack, subject: str, role: str, **extra: Any) -> Api:
    """Invite ``subject`` to the default workspace with ``role``; their API once signed in."""
    email = f"{subject}@example.org"
    response = owner.post(
        f"/v1/workspaces/{stack.settings.default_workspace}/members",
        json={"email": email, "role": role, **extra},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    member = Api(stack, token_for(stack, subject, email=email))
    assert body_of(member.get("/v1/me"))["role"] == role
    return member


def principal_id(api: Api) -> str:
    return str(body_of(api.get("/v1/me"))["principal"]["id"])


def retrieve(api: Api, kb_ids: list[str], question: str, **extra: Any) -> list[dict[str, Any]]:
    response = api.post(
        "/v1/retrieve", json={"knowledge_base_ids": kb_ids, "question": question, **extra}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return list(body_of(response)["passages"])


def ask(api: Api, kb_ids: list[str], question: str) -> dict[str, Any]:
    response = api.post("/v1/ask", json={"knowledge_base_ids": kb_ids, "question": question})
    assert response.status_code == 200, response.get_data(as_text=True)
    return dict(body_of(response))


def ask_stream(api: Api, kb_ids: list[str], question: str) -> str:
    """The whole SSE body of an ask with ``Accept: text/event-stream``."""
    response = api.post(
        "/v1/ask",
        json={"knowledge_base_ids": kb_ids, "question": question},
        headers={"Accept": "text/event-stream"},
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    text = response.get_data(as_text=True)
    assert "event: done" in text, text
    return text


def event_names(api: Api, document_id: str) -> list[str]:
    """The statuses of the document's event stream, from the start."""
    response = api.get(f"/v1/documents/{document_id}/events?timeout=2")
    assert response.status_code == 200
    return [
        line.split(": ", 1)[1]
        for line in response.get_data(as_text=True).splitlines()
        if line.startswith("event: ")
    ]


def chunk_ids(stack: LocalStack, document_id: str) -> list[int]:
    return [
        int(value)
        for value in stack.database.scalars(
            "SELECT id FROM chunks WHERE document_id = CAST(:d AS uuid) ORDER BY id", d=document_id
        )
    ]


def test_a_version_awaits_approval_while_the_approved_one_answers(
    clean_stack: LocalStack,
) -> None:
    stack = clean_stack
    owner = Api(stack)
    editor = invite(owner, stack, "ed", "editor")
    viewer = invite(owner, stack, "vi", "viewer")
    kb = owner.create_kb("policies", require_approval=True)
    assert kb["require_approval"] is True

    # The first version waits: the document has no active version and is never read.
    first = owner.upload(kb["id"], "refunds.md", REFUNDS_30.encode())
    stack.wait_idle(180)
    document_id = first["document_id"]
    waiting = owner.document(document_id)
    assert waiting["status"] == "awaiting_approval"
    assert waiting["active_version_id"] is None
    assert chunk_ids(stack, document_id), "the waiting version is indexed"
    assert retrieve(viewer, [kb["id"]], "refund within days") == []
    assert "awaiting_approval" in event_names(viewer, document_id)

    # A redelivered index message changes nothing.
    assert index_version(stack.runtime, first["version_id"]) is False
    assert owner.document(document_id)["status"] == "awaiting_approval"

    approved = editor.post(f"/v1/documents/{document_id}/approve")
    assert approved.status_code == 200, approved.get_data(as_text=True)
    body = body_of(approved)
    assert body["status"] == "ready" and body["active_version_id"] == first["version_id"]
    assert body["versions"][0]["approved_by"] == principal_id(editor)
    assert body["versions"][0]["approved_at"]
    assert "30 days" in retrieve(viewer, [kb["id"]], "refund within days")[0]["text"]

    # A new version waits; the approved one keeps answering meanwhile.
    second = owner.upload(kb["id"], "refunds.md", REFUNDS_60.encode())
    stack.wait_idle(180)
    assert second["document_id"] == document_id
    document = owner.document(document_id)
    assert document["status"] == "awaiting_approval"
    assert document["active_version_id"] == first["version_id"]
    passages = retrieve(viewer, [kb["id"]], "refund within days")
    assert {p["version_id"] for p in passages} == {first["version_id"]}
    assert "30 days" in ask(viewer, [kb["id"]], "How many days for a refund?")["answer"]

    # Approving switches atomically and drops the superseded version's chunks.
    assert editor.post(f"/v1/documents/{document_id}/approve", json={}).status_code == 200
    document = owner.document(document_id)
    assert document["active_version_id"] == second["version_id"]
    assert [v["status"] for v in document["versions"]] == ["ready", "superseded"]
    assert {version for version, _ in all_chunks(stack, document_id)} == {second["version_id"]}
    passages = retrieve(viewer, [kb["id"]], "refund within days")
    assert passages and {p["version_id"] for p in passages} == {second["version_id"]}
    assert "60 days" in passages[0]["text"]
    assert event_names(owner, document_id).count("approved") == 2

    # Nothing is left to approve; a version of another document is not this one's.
    again = editor.post(f"/v1/documents/{document_id}/approve")
    assert again.status_code == 409 and body_of(again)["error"]["code"] == "nothing_to_approve"
    superseded = editor.post(
        f"/v1/documents/{document_id}/approve", json={"version_id": first["version_id"]}
    )
    assert body_of(superseded)["error"]["code"] == "not_awaiting_approval"

    # Without approval a finished version is active at once (approved by no one).
    patched = owner.patch(f"/v1/knowledge-bases/{kb['id']}", json={"require_approval": False})
    assert body_of(patched)["require_approval"] is False
    third = owner.upload(kb["id"], "refunds.md", (REFUNDS_30 + " Sale items excepted.").encode())
    stack.wait_idle(180)
    document = owner.document(document_id)
    assert document["status"] == "ready"
    assert document["active_version_id"] == third["version_id"]
    assert document["versions"][0]["approved_by"] is None
    assert document["versions"][0]["approved_at"]


def test_duplicate_deliveries_leave_one_version_awaiting_approval(
    clean_stack: LocalStack,
) -> None:
    stack = clean_stack
    owner = Api(stack)
    kb = owner.create_kb("policies", require_approval=True)
    first = owner.ingest(kb["id"], "refunds.md", REFUNDS_30.encode())
    assert owner.post(f"/v1/documents/{first['id']}/approve").status_code == 200

    # Every message of the second version is delivered twice, out of order.
    stack.config.delivery.duplicate = True
    stack.config.delivery.max_jitter_s = 0.3
    second = owner.upload(kb["id"], "refunds.md", REFUNDS_60.encode())
    stack.wait_idle(180)
    document = owner.document(first["id"])
    assert [v["status"] for v in document["versions"]] == ["awaiting_approval", "ready"]
    assert document["active_version_id"] == first["latest_version_id"]
    statuses = [
        str(status)
        for status in stack.database.scalars(
            "SELECT status FROM document_events WHERE version_id = CAST(:v AS uuid) ORDER BY id",
            v=second["version_id"],
        )
    ]
    assert statuses == [
        "received",
        "parsing",
        "chunking",
        "embedding",
        "indexing",
        "awaiting_approval",
    ], "a redelivered index message leaves the version waiting, with one event"


def test_archived_and_unapproved_documents_are_read_by_no_role(clean_stack: LocalStack) -> None:
    stack = clean_stack
    owner = Api(stack)
    kb = owner.create_kb("handbook", require_approval=True)
    other = owner.create_kb("garden")
    ids = {
        name: owner.upload(kb["id"], f"{name}.md", text.encode())["document_id"]
        for name, text in (("refunds", REFUNDS_30), ("zebra", ZEBRA), ("quokka", PENDING))
    }
    owner.upload(other["id"], "garden.md", GARDEN.encode())
    stack.wait_idle(180)
    for name in ("refunds", "zebra"):
        assert owner.post(f"/v1/documents/{ids[name]}/approve").status_code == 200
    archived = owner.post(f"/v1/documents/{ids['zebra']}/archive")
    assert archived.status_code == 200 and body_of(archived)["archived"] is True
    # Archiving twice changes nothing and adds no event.
    assert owner.post(f"/v1/documents/{ids['zebra']}/archive").status_code == 200
    assert event_names(owner, ids["zebra"]).count("archived") == 1

    admin = invite(owner, stack, "ad", "admin")
    editor = invite(owner, stack, "ed", "editor")
    viewer = invite(owner, stack, "vi", "viewer")
    limited = invite(owner, stack, "li", "viewer", limited=True)
    granted = owner.put(
        f"/v1/knowledge-bases/{kb['id']}/grants/{principal_id(limited)}", json={"access": "read"}
    )
    assert granted.status_code == 200
    hidden = {ids["zebra"], ids["quokka"]}
    hidden_chunks = chunk_ids(stack, ids["zebra"]) + chunk_ids(stack, ids["quokka"])
    assert len(hidden_chunks) >= 2

    for role, api in (
        ("owner", owner),
        ("admin", admin),
        ("editor", editor),
        ("viewer", viewer),
        ("limited", limited),
    ):
        for question in ("zebra warranty hooves manes", "quokka mascot onboarding parade"):
            passages = retrieve(api, [kb["id"]], question)
            assert not {p["document_id"] for p in passages} & hidden, (role, question)
            # Naming the hidden documents outright finds nothing either.
            named = retrieve(api, [kb["id"]], question, filters={"document_ids": sorted(hidden)})
            assert named == [], role
            answer = ask(api, [kb["id"]], question)
            assert not {c["document_id"] for c in answer["citations"]} & hidden, role
            streamed = ask_stream(api, [kb["id"]], question)
            assert not any(document_id in streamed for document_id in hidden), role
        assert "30 days" in retrieve(api, [kb["id"]], "refund within days")[0]["text"], role
        for chunk_id in hidden_chunks:
            assert api.get(f"/v1/citations/{chunk_id}/viewer").status_code == 404, role
        visible_chunk = chunk_ids(stack, ids["refunds"])[0]
        assert api.get(f"/v1/citations/{visible_chunk}/viewer").status_code == 200, role
        # Kept and listed, with their state.
        listed = body_of(api.get(f"/v1/knowledge-bases/{kb['id']}/documents"))["documents"]
        state = {d["id"]: (d["status"], d["archived"]) for d in listed}
        assert state == {
            ids["refunds"]: ("ready", False),
            ids["zebra"]: ("ready", True),
            ids["quokka"]: ("awaiting_approval", False),
        }, role

    only = body_of(owner.get(f"/v1/knowledge-bases/{kb['id']}/documents?archived=true"))
    assert [d["id"] for d in only["documents"]] == [ids["zebra"]]
    others = body_of(owner.get(f"/v1/knowledge-bases/{kb['id']}/documents?archived=false"))
    assert {d["id"] for d in others["documents"]} == {ids["refunds"], ids["quokka"]}
    bad = owner.get(f"/v1/knowledge-bases/{kb['id']}/documents?archived=maybe")
    assert bad.status_code == 400

    # Unarchived, it answers again.
    restored = editor.post(f"/v1/documents/{ids['zebra']}/unarchive")
    assert restored.status_code == 200 and body_of(restored)["archived"] is False
    passages = retrieve(viewer, [kb["id"]], "zebra warranty hooves manes")
    assert passages and passages[0]["document_id"] == ids["zebra"]
    names = event_names(owner, ids["zebra"])
    assert names.index("archived") < names.index("unarchived")


def test_routing_and_the_scope_size_leave_out_archived_documents(clean_stack: LocalStack) -> None:
    stack = clean_stack
    owner = Api(stack)
    kb = owner.create_kb("filings")
    ids = {
        name: owner.upload(kb["id"], f"{name}.md", text.encode())["document_id"]
        for name, text in (
            ("zebra", "Zebra Corp quarterly report. Zebra revenue grew to 5 million."),
            ("quokka", "Quokka Inc quarterly report. Quokka revenue grew to 7 million."),
            ("koala", "Koala Ltd quarterly report. Koala revenue grew to 9 million."),
        )
    }
    stack.wait_idle(180)
    scope = compile_scope(Scope(kb_ids=[kb["id"]], workspace=stack.settings.default_workspace))
    request = RetrievalRequest(
        query="What was Zebra revenue?",
        kb_ids=[kb["id"]],
        workspace=stack.settings.default_workspace,
    )
    with stack.database.session() as session:
        assert [m.id for m in profile_matches(session, scope, ["Zebra"])] == [ids["zebra"]]
        assert route_documents(session, request)[0] == [ids["zebra"]]
    size = scope_chunk_count(stack.database, scope, 1000)
    zebra_chunks = len(chunk_ids(stack, ids["zebra"]))

    assert owner.post(f"/v1/documents/{ids['zebra']}/archive").status_code == 200
    with stack.database.session() as session:
        assert profile_matches(session, scope, ["Zebra"]) == []
        assert [m.in_scope for m in profile_matches(session, scope, ["Quokka"])] == [2]
        assert route_documents(session, request)[0] is None
    assert scope_chunk_count(stack.database, scope, 1000) == size - zebra_chunks


def test_roles_below_editor_may_not_approve_archive_or_edit(clean_stack: LocalStack) -> None:
    stack = clean_stack
    owner = Api(stack)
    kb = owner.create_kb("policies", require_approval=True)
    document_id = owner.upload(kb["id"], "refunds.md", REFUNDS_30.encode())["document_id"]
    stack.wait_idle(180)
    viewer = invite(owner, stack, "vi", "viewer")
    outsider = invite(owner, stack, "out", "editor", limited=True)  # no grant: sees nothing
    reader = invite(owner, stack, "rd", "editor", limited=True)
    assert (
        owner.put(
            f"/v1/knowledge-bases/{kb['id']}/grants/{principal_id(reader)}",
            json={"access": "read"},
        ).status_code
        == 200
    )
    actions = (
        ("post", f"/v1/documents/{document_id}/approve", None),
        ("post", f"/v1/documents/{document_id}/archive", None),
        ("post", f"/v1/documents/{document_id}/unarchive", None),
        ("patch", f"/v1/documents/{document_id}", {"title": "Mine"}),
    )
    for api, status in ((viewer, 403), (reader, 403), (outsider, 404)):
        for method, path, body in actions:
            response = getattr(api, method)(path, json=body) if body else getattr(api, method)(path)
            assert response.status_code == status, (method, path, response.get_data())
    assert owner.document(document_id)["status"] == "awaiting_approval"
    assert outsider.get(f"/v1/documents/{document_id}/file").status_code == 404

    # A write grant makes the limited member an editor of this knowledge base.
    owner.put(
        f"/v1/knowledge-bases/{kb['id']}/grants/{principal_id(reader)}", json={"access": "write"}
    )
    assert reader.post(f"/v1/documents/{document_id}/approve").status_code == 200


def test_patch_changes_title_and_metadata_for_listings_and_filters(
    clean_stack: LocalStack,
) -> None:
    stack = clean_stack
    owner = Api(stack)
    editor = invite(owner, stack, "ed", "editor")
    kb = owner.create_kb("policies")
    document_id = owner.upload(
        kb["id"], "refunds.md", f"# Old title\n\n{REFUNDS_30}".encode(), {"team": "sales"}
    )["document_id"]
    stack.wait_idle(180)
    assert retrieve(owner, [kb["id"]], "refund", filters={"metadata": {"team": "sales"}})

    patched = editor.patch(
        f"/v1/documents/{document_id}",
        json={"title": "Refunds", "metadata": {"team": "support", "tags": ["policy"]}},
    )
    assert patched.status_code == 200, patched.get_data(as_text=True)
    listed = body_of(owner.get(f"/v1/knowledge-bases/{kb['id']}/documents"))["documents"]
    assert listed[0]["title"] == "Refunds"
    assert listed[0]["metadata"] == {"team": "support", "tags": ["policy"]}
    assert retrieve(owner, [kb["id"]], "refund", filters={"metadata": {"team": "sales"}}) == []
    found = retrieve(owner, [kb["id"]], "refund", filters={"metadata": {"team": "support"}})
    assert found and found[0]["title"] == "Refunds"
    assert "edited" in event_names(owner, document_id)

    # An edited title survives the next version's parse.
    assert owner.post(f"/v1/documents/{document_id}/reindex").status_code == 202
    stack.wait_idle(180)
    assert owner.document(document_id)["title"] == "Refunds"

    for bad in (
        {"metadata": ["not", "an", "object"]},
        {"metadata": {"big": "x" * 9000}},
        {"metadata": {f"k{n}": n for n in range(65)}},
        {"title": "   "},
        {},
        {"owner": "me"},
    ):
        response = editor.patch(f"/v1/documents/{document_id}", json=bad)
        assert response.status_code == 400, (bad, response.get_data())
    assert owner.document(document_id)["metadata"] == {"team": "support", "tags": ["policy"]}


def test_file_link_downloads_the_original_bytes(clean_stack: LocalStack) -> None:
    stack = clean_stack
    owner = Api(stack)
    viewer = invite(owner, stack, "vi", "viewer")
    kb = owner.create_kb("files")
    data = ("Quarterly numbers, é and ü included.\n" * 50).encode()
    document_id = owner.upload(kb["id"], "rapport é.txt", data)["document_id"]
    stack.wait_idle(180)

    response = viewer.get(f"/v1/documents/{document_id}/file")
    assert response.status_code == 200, response.get_data(as_text=True)
    link = body_of(response)
    assert link["filename"] == "rapport é.txt" and link["method"] == "GET"
    assert urlsplit(link["url"]).hostname in ("127.0.0.1", "localhost")
    assert "X-Goog-Signature=" in link["url"]
    downloaded = requests.get(link["url"], timeout=30)
    assert downloaded.status_code == 200
    assert downloaded.content == data
    disposition = downloaded.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''rapport%20%C3%A9.txt" in disposition

    stranger = Api(stack, token_for(stack, "stranger"))
    assert stranger.get(f"/v1/documents/{document_id}/file").status_code == 404
    missing = "00000000-0000-4000-8000-000000000000"
    assert viewer.get(f"/v1/documents/{missing}/file").status_code == 404


def test_a_waiting_first_version_is_downloadable_by_editors_only(clean_stack: LocalStack) -> None:
    stack = clean_stack
    owner = Api(stack)
    viewer = invite(owner, stack, "vi", "viewer")
    editor = invite(owner, stack, "ed", "editor")
    kb = owner.create_kb("drafts", require_approval=True)
    document_id = owner.upload(kb["id"], "draft.txt", PENDING.encode())["document_id"]
    stack.wait_idle(180)
    assert viewer.get(f"/v1/documents/{document_id}/file").status_code == 404
    link = body_of(editor.get(f"/v1/documents/{document_id}/file"))
    assert requests.get(link["url"], timeout=30).content == PENDING.encode()


# Rows of a knowledge base, per table (``:k``).
KB_ROWS = {
    "knowledge_bases": "SELECT count(*) FROM knowledge_bases WHERE id = CAST(:k AS uuid)",
    "documents": "SELECT count(*) FROM documents WHERE kb_id = CAST(:k AS uuid)",
    "document_versions": "SELECT count(*) FROM document_versions WHERE kb_id = CAST(:k AS uuid)",
    "chunks": "SELECT count(*) FROM chunks WHERE kb_id = CAST(:k AS uuid)",
    "document_events": "SELECT count(*) FROM document_events WHERE kb_id = CAST(:k AS uuid)",
    "kb_grants": "SELECT count(*) FROM kb_grants WHERE kb_id = CAST(:k AS uuid)",
    "access_requests": "SELECT count(*) FROM access_requests WHERE kb_id = CAST(:k AS uuid)",
    "chat_sessions": "SELECT count(*) FROM chat_sessions WHERE CAST(:k AS uuid) = ANY(kb_ids)",
    "chat_turns": "SELECT count(*) FROM chat_turns WHERE CAST(:k AS uuid) = ANY(kb_ids)",
    "turn_feedback": "SELECT count(*) FROM turn_feedback f JOIN chat_turns t"
    " ON t.id = f.turn_id WHERE CAST(:k AS uuid) = ANY(t.kb_ids)",
}
# Rows of a workspace, per table (``:w`` its id, ``:n`` its name).
WORKSPACE_ROWS = {
    "workspaces": "SELECT count(*) FROM workspaces WHERE id = CAST(:w AS uuid)",
    "workspace_members": "SELECT count(*) FROM workspace_members"
    " WHERE workspace_id = CAST(:w AS uuid)",
    "workspace_invitations": "SELECT count(*) FROM workspace_invitations"
    " WHERE workspace_id = CAST(:w AS uuid)",
    "api_keys": "SELECT count(*) FROM api_keys WHERE workspace_id = CAST(:w AS uuid)",
    "stream_tickets": "SELECT count(*) FROM stream_tickets WHERE workspace = :n",
    "chat_sessions": "SELECT count(*) FROM chat_sessions WHERE workspace_id = CAST(:w AS uuid)",
    "knowledge_bases": "SELECT count(*) FROM knowledge_bases WHERE workspace_id = CAST(:w AS uuid)",
}


def kb_rows(stack: LocalStack, kb_id: str) -> dict[str, int]:
    return {table: int(stack.database.scalar(sql, k=kb_id)) for table, sql in KB_ROWS.items()}


def workspace_rows(stack: LocalStack, workspace_id: str, name: str) -> dict[str, int]:
    return {
        table: int(stack.database.scalar(sql, w=workspace_id, n=name))
        for table, sql in WORKSPACE_ROWS.items()
    }


def kb_objects(stack: LocalStack, kb_id: str) -> set[str]:
    """gs:// names of every object the knowledge base's versions stored (source, parsed)."""
    settings = stack.settings
    versions = stack.database.run(
        "SELECT id::text, object_bucket, object_name FROM document_versions"
        " WHERE kb_id = CAST(:k AS uuid)",
        k=kb_id,
    )
    names = set()
    for version_id, bucket, name in versions:
        names.add(f"gs://{bucket}/{name}")
        names.add(f"gs://{settings.work_bucket}/parsed/{version_id}.json")
    return names


def stored_objects(stack: LocalStack) -> set[str]:
    client = stack.objects.client
    return {
        f"gs://{bucket}/{blob.name}"
        for bucket in (stack.settings.upload_bucket, stack.settings.work_bucket)
        for blob in client.list_blobs(bucket)
    }


def fill_knowledge_base(owner: Api, member: Api, kb_id: str, text: str, question: str) -> None:
    """Documents (two versions), a chat turn with feedback, a grant and an access request."""
    owner.upload(kb_id, "a.md", text.encode())
    owner.upload(kb_id, "b.md", (text + " Second file.").encode())
    owner.stack.wait_idle(180)
    owner.upload(kb_id, "a.md", (text + " Revised.").encode())
    owner.stack.wait_idle(180)
    turn = ask(owner, [kb_id], question)
    rated = owner.post(f"/v1/turns/{turn['turn_id']}/feedback", json={"rating": "up"})
    assert rated.status_code in (200, 201), rated.get_data(as_text=True)
    member_id = principal_id(member)
    granted = owner.put(f"/v1/knowledge-bases/{kb_id}/grants/{member_id}", json={"access": "read"})
    assert granted.status_code == 200
    requested = member.post(
        f"/v1/knowledge-bases/{kb_id}/access-requests", json={"access": "write"}
    )
    assert requested.status_code == 201, requested.get_data(as_text=True)


def test_deleting_a_knowledge_base_leaves_nothing_of_it(clean_stack: LocalStack) -> None:
    stack = clean_stack
    owner = Api(stack)
    editor = invite(owner, stack, "ed", "editor", limited=True)
    doomed = owner.create_kb("doomed")
    kept = owner.create_kb("kept")
    fill_knowledge_base(owner, editor, doomed["id"], ZEBRA, "What does the zebra warranty cover?")
    fill_knowledge_base(owner, editor, kept["id"], GARDEN, "How much sunlight do tomatoes need?")
    before = kb_rows(stack, doomed["id"])
    assert all(count > 0 for count in before.values()), before
    kept_before = kb_rows(stack, kept["id"])
    doomed_objects = kb_objects(stack, doomed["id"])
    kept_objects = kb_objects(stack, kept["id"]) & stored_objects(stack)
    assert doomed_objects & stored_objects(stack) and kept_objects
    versions = [
        str(v)
        for v in stack.database.scalars(
            "SELECT id::text FROM document_versions WHERE kb_id = CAST(:k AS uuid)",
            k=doomed["id"],
        )
    ]
    # An operator's object whose bucket event may still be in flight.
    dropped = stack.objects.upload_bytes(
        stack.settings.upload_bucket, "doomed/late.txt", b"Late zebra file."
    )

    # Only admins delete knowledge bases; who cannot see one finds none.
    assert editor.delete(f"/v1/knowledge-bases/{doomed['id']}").status_code == 403
    viewer = invite(owner, stack, "vi", "viewer")
    assert viewer.delete(f"/v1/knowledge-bases/{doomed['id']}").status_code == 403
    outsider = invite(owner, stack, "out", "editor", limited=True)
    assert outsider.delete(f"/v1/knowledge-bases/{doomed['id']}").status_code == 404
    assert owner.delete(f"/v1/knowledge-bases/{doomed['id']}").status_code == 204
    stack.wait_idle(180)

    # Messages still in flight for the deleted versions are no-ops, and a late bucket
    # event does not bring the knowledge base back.
    for version_id in versions:
        assert parse_version(stack.runtime, version_id) is False
        assert chunk_version(stack.runtime, version_id) is False
        task = EmbedTask(version_id=version_id, first_ordinal=0, last_ordinal=10)
        assert embed_batch(stack.runtime, task) is False
        assert index_version(stack.runtime, version_id) is False
    assert ingest_finalized(stack.runtime, dropped) is None
    stack.wait_idle(180)

    assert kb_rows(stack, doomed["id"]) == dict.fromkeys(KB_ROWS, 0)
    assert not doomed_objects & stored_objects(stack)
    folder = f"gs://{stack.settings.upload_bucket}/doomed/"
    assert not {name for name in stored_objects(stack) if name.startswith(folder)}
    assert stack.database.scalar("SELECT count(*) FROM knowledge_bases WHERE name = 'doomed'") == 0
    assert owner.delete(f"/v1/knowledge-bases/{doomed['id']}").status_code == 404
    # The other knowledge base is untouched.
    assert kb_rows(stack, kept["id"]) == kept_before
    assert kept_objects <= stored_objects(stack)
    assert retrieve(owner, [kept["id"]], "tomato sunlight")


def test_deleting_a_workspace_leaves_nothing_of_it(clean_stack: LocalStack) -> None:
    stack = clean_stack
    home = Api(stack)
    created = home.post("/v1/workspaces", json={"name": "research"})
    assert created.status_code == 201
    owner = Api(stack, home.token, workspace="research")
    member_email = "res@example.org"
    invited = owner.post(
        "/v1/workspaces/research/members",
        json={"email": member_email, "role": "viewer", "limited": True},
    )
    assert invited.status_code == 201
    member = Api(stack, token_for(stack, "res", email=member_email), workspace="research")
    assert body_of(member.get("/v1/me"))["workspace"] == "research"
    pending = owner.post(
        "/v1/workspaces/research/members", json={"email": "later@example.org", "role": "editor"}
    )
    assert pending.status_code == 201
    key = owner.post("/v1/workspaces/research/api-keys", json={"name": "ci", "role": "viewer"})
    assert key.status_code == 201, key.get_data(as_text=True)
    kb_ids = [owner.create_kb(name)["id"] for name in ("papers", "notes")]
    fill_knowledge_base(owner, member, kb_ids[0], ZEBRA, "What does the zebra warranty cover?")
    owner.upload(kb_ids[1], "notes.md", PENDING.encode())
    stack.wait_idle(180)
    ticket = owner.post("/v1/stream-tickets", json={"path": "/v1/ask/stream"})
    assert ticket.status_code in (200, 201), ticket.get_data(as_text=True)

    # The default workspace's knowledge base, which must survive.
    home_kb = home.create_kb("home")
    home.ingest(home_kb["id"], "garden.md", GARDEN.encode())
    home_before = kb_rows(stack, home_kb["id"])
    home_objects = kb_objects(stack, home_kb["id"])

    workspace_id = str(
        stack.database.scalar("SELECT id::text FROM workspaces WHERE name = 'research'")
    )
    assert all(count > 0 for count in workspace_rows(stack, workspace_id, "research").values())
    objects = set().union(*(kb_objects(stack, kb_id) for kb_id in kb_ids))
    assert objects & stored_objects(stack)

    # Admins may not; owners may; the default workspace stays.
    admin_email = "adm@example.org"
    owner.post("/v1/workspaces/research/members", json={"email": admin_email, "role": "admin"})
    admin = Api(stack, token_for(stack, "adm", email=admin_email), workspace="research")
    assert body_of(admin.get("/v1/me"))["role"] == "admin"
    assert admin.delete("/v1/workspaces/research").status_code == 403
    assert member.delete("/v1/workspaces/research").status_code == 403
    default = home.delete(f"/v1/workspaces/{stack.settings.default_workspace}")
    assert default.status_code == 409
    assert body_of(default)["error"]["code"] == "default_workspace"
    assert owner.delete("/v1/workspaces/research").status_code == 204
    stack.wait_idle(180)

    assert workspace_rows(stack, workspace_id, "research") == dict.fromkeys(WORKSPACE_ROWS, 0)
    for kb_id in kb_ids:
        assert kb_rows(stack, kb_id) == dict.fromkeys(KB_ROWS, 0)
    assert not objects & stored_objects(stack)
    assert home.delete("/v1/workspaces/research").status_code == 404
    remaining = [w["workspace"] for w in body_of(home.get("/v1/me"))["workspaces"]]
    assert remaining == [stack.settings.default_workspace]
    # The default workspace is untouched.
    assert kb_rows(stack, home_kb["id"]) == home_before
    assert home_objects <= stored_objects(stack)
    assert retrieve(home, [home_kb["id"]], "tomato sunlight")


def test_a_document_deleted_while_parsed_leaves_no_parsed_text(
    clean_stack: LocalStack, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = clean_stack
    runtime: Runtime = stack.runtime
    owner = Api(stack)
    kb = owner.create_kb("racy")
    document_id, version_id = store_version(stack, kb["id"], REFUNDS_30)
    parse = runtime.parser

    def parse_then_delete(data: bytes, **options: Any) -> Any:
        # The document is deleted while its parse is under way.
        parsed = parse(data, **options)
        assert owner.delete(f"/v1/documents/{document_id}").status_code == 204
        return parsed

    monkeypatch.setattr(runtime, "_parser", parse_then_delete)
    assert parse_version(runtime, version_id) is False
    parsed_text = f"gs://{stack.settings.work_bucket}/parsed/{version_id}.json"
    assert parsed_text not in stored_objects(stack)
    assert not [topic for topic, _ in recorder.messages if topic == stack.settings.topic_chunk]


def test_a_late_upload_for_a_deleted_document_is_removed(clean_stack: LocalStack) -> None:
    stack = clean_stack
    owner = Api(stack)
    kb = owner.create_kb("late")
    grant = body_of(
        owner.post(
            f"/v1/knowledge-bases/{kb['id']}/uploads",
            json={"filename": "late.md", "content_type": "text/markdown", "size": 10},
        )
    )
    assert owner.delete(f"/v1/knowledge-bases/{kb['id']}").status_code == 204
    # The client uses its signed URL after the knowledge base is gone.
    put = requests.put(
        grant["upload_url"], data=b"late bytes", headers=grant["headers"], timeout=30
    )
    assert put.status_code == 200
    name = grant["object"].split("/", 3)[3]
    info = stack.objects.stat(stack.settings.upload_bucket, name)
    assert info is not None
    assert ingest_finalized(stack.runtime, info) is None
    stack.wait_idle(60)
    assert grant["object"] not in stored_objects(stack)
    assert stack.database.scalar("SELECT count(*) FROM documents") == 0
