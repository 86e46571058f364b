"""The HTTP API through the one-origin app, as a frontend calls it."""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from werkzeug.test import TestResponse

from scripts.localstack.stack import LocalStack
from shared.config import get_settings
from tests.support.api import Api, all_chunks, visible_chunks

NOTE = (
    "# Field notes\n\n"
    "The first paragraph introduces the notes.\n\n"
    "## Details\n\n" + "Every detail is written down carefully and checked twice. " * 80
)
BINARY = b"\x00\x01\x02binary"
PIPELINE = ["received", "parsing", "chunking", "embedding", "indexing", "ready"]


def assert_error(response: TestResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is an API error of ``status`` in the ``{"error": {code, message}}`` shape."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = json.loads(response.get_data(as_text=True))
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message"}
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


def body(response: TestResponse) -> dict[str, Any]:
    return dict(json.loads(response.get_data(as_text=True)))


# --------------------------------------------------------------------------- basics


def test_healthz(clean_stack: LocalStack) -> None:
    response = Api(clean_stack).get("/healthz")
    assert response.status_code == 200
    assert body(response) == {"status": "ok"}


def test_unknown_route_is_a_json_404(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    assert_error(api.get("/nowhere"), 404, "not_found")
    assert_error(api.get("/v1/nowhere"), 404, "not_found")


def test_wrong_method_is_a_json_405(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    assert_error(api.client.put("/v1/knowledge-bases", json={}), 405, "method_not_allowed")
    assert_error(api.post("/healthz"), 405, "method_not_allowed")


# --------------------------------------------------------------------------- knowledge bases


def test_create_and_list_knowledge_bases(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    response = api.post(
        "/v1/knowledge-bases",
        json={"name": "handbook", "description": "staff handbook", "chunk_tokens": 200},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    created = body(response)
    assert uuid.UUID(created["id"])
    assert created["name"] == "handbook"
    assert created["description"] == "staff handbook"
    assert created["embedding_model"] == get_settings().default_embedding_model
    assert created["embedding_dim"] > 0
    assert created["chunk_tokens"] == 200
    api.create_kb("archive")

    listed = api.get("/v1/knowledge-bases")
    assert listed.status_code == 200
    kbs = body(listed)["knowledge_bases"]
    assert [kb["name"] for kb in kbs] == ["archive", "handbook"]
    assert next(kb for kb in kbs if kb["name"] == "handbook") == created


def test_duplicate_knowledge_base_name_is_409(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    api.create_kb("twice")
    assert_error(api.post("/v1/knowledge-bases", json={"name": "twice"}), 409, "already_exists")
    assert len(body(api.get("/v1/knowledge-bases"))["knowledge_bases"]) == 1


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"name": "has space"}, "invalid_name"),
        ({"name": "-leading-dash"}, "invalid_name"),
        ({"name": "x" * 64}, "invalid_request"),
        ({"name": ""}, "invalid_request"),
        ({}, "invalid_request"),
        ({"name": "ok", "colour": "blue"}, "invalid_request"),
        ({"name": "ok", "embedding_model": "no-such-model"}, "invalid_embedding_model"),
        ({"name": "ok", "chunk_tokens": 8}, "invalid_request"),
        ({"name": "ok", "chunk_tokens": 9000}, "invalid_request"),
        ({"name": "ok", "chunk_overlap": -1}, "invalid_request"),
        ({"name": "ok", "chunk_tokens": 100, "chunk_overlap": 100}, "invalid_chunking"),
        ({"name": "ok", "embedding_dimensions": 0}, "invalid_request"),
        ({"name": "ok", "routing": "sometimes"}, "invalid_request"),
    ],
    ids=[
        "space-in-name",
        "leading-dash",
        "name-too-long",
        "empty-name",
        "no-name",
        "unknown-field",
        "unknown-embedding-model",
        "chunk-tokens-too-small",
        "chunk-tokens-too-large",
        "negative-overlap",
        "overlap-not-below-tokens",
        "zero-dimensions",
        "unknown-routing",
    ],
)
def test_invalid_knowledge_base_is_400(
    clean_stack: LocalStack, payload: dict[str, Any], code: str
) -> None:
    api = Api(clean_stack)
    assert_error(api.post("/v1/knowledge-bases", json=payload), 400, code)
    assert body(api.get("/v1/knowledge-bases"))["knowledge_bases"] == []


@pytest.mark.parametrize("data", [b"{not json", b"", b"[1, 2]", b'"name"', b"\xff\xfe"], ids=repr)
def test_bad_json_body_is_400(clean_stack: LocalStack, data: bytes) -> None:
    api = Api(clean_stack)
    response = api.post("/v1/knowledge-bases", data=data, content_type="application/json")
    assert_error(response, 400, "invalid_json")


def test_unknown_knowledge_base_is_404(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    for ref in (str(uuid.uuid4()), "no-such-kb"):
        assert_error(
            api.get(f"/v1/knowledge-bases/{ref}/documents"), 404, "knowledge_base_not_found"
        )
        response = api.post(
            f"/v1/knowledge-bases/{ref}/documents", data={"file": (io.BytesIO(b"hi"), "a.txt")}
        )
        assert_error(response, 404, "knowledge_base_not_found")
        response = api.post(
            f"/v1/knowledge-bases/{ref}/uploads",
            json={"filename": "a.txt", "content_type": "text/plain", "size": 2},
        )
        assert_error(response, 404, "knowledge_base_not_found")


# --------------------------------------------------------------------------- uploads


def test_post_document_without_file_is_400(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("nofile")
    response = api.post(f"/v1/knowledge-bases/{kb['id']}/documents", data={"other": "x"})
    assert_error(response, 400, "missing_file")
    response = api.post(f"/v1/knowledge-bases/{kb['id']}/documents", json={"file": "x"})
    assert_error(response, 400, "missing_file")
    assert body(api.get(f"/v1/knowledge-bases/{kb['id']}/documents"))["documents"] == []


def test_oversize_multipart_upload_is_413(
    clean_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("small")
    monkeypatch.setattr(get_settings(), "max_upload_bytes", 1000)
    path = f"/v1/knowledge-bases/{kb['id']}/documents"

    # Just over the limit: caught while reading the file.
    over = api.post(path, data={"file": (io.BytesIO(b"a" * 1001), "over.txt")})
    assert_error(over, 413, "payload_too_large")
    # Far over the limit: refused from Content-Length before the body is parsed.
    huge = api.post(path, data={"file": (io.BytesIO(b"a" * 200_000), "huge.txt")})
    assert_error(huge, 413, "payload_too_large")
    assert "signed URL" in huge.json["error"]["message"]  # type: ignore[index]
    # At the limit: accepted.
    at = api.post(path, data={"file": (io.BytesIO(b"a" * 1000), "at.txt")})
    assert at.status_code == 202, at.get_data(as_text=True)
    clean_stack.wait_idle()
    names = [d["filename"] for d in body(api.get(path))["documents"]]
    assert names == ["at.txt"]


def test_metadata_is_stored_and_invalid_metadata_is_400(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("meta")
    accepted = api.upload(kb["id"], "notes.md", NOTE.encode(), {"team": "ops", "year": "2024"})
    clean_stack.wait_idle()
    document = api.document(accepted["document_id"])
    assert document["metadata"] == {"team": "ops", "year": "2024"}
    assert document["status"] == "ready"

    path = f"/v1/knowledge-bases/{kb['id']}/documents"
    for bad in ("{not json", "[1, 2]", '{"nested": {"a": 1}}', '"text"'):
        form = {"file": (io.BytesIO(b"# Other\n\nText."), "other.md"), "metadata": bad}
        assert_error(api.post(path, data=form), 400, "invalid_metadata")


# --------------------------------------------------------------------------- documents


def test_document_detail_of_ready_and_failed_documents(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("detail")
    good = api.ingest(kb["id"], "notes.md", NOTE.encode())
    bad = api.ingest(kb["id"], "blob.bin", BINARY)

    assert good["status"] == "ready"
    assert good["filename"] == good["source_key"] == "notes.md"
    assert good["knowledge_base_id"] == kb["id"]
    assert good["error"] is None
    assert good["page_count"] == 0
    assert good["chunk_count"] == len(visible_chunks(clean_stack, good["id"])) > 1
    assert [stage for stage in PIPELINE if good["stages"][stage]] == PIPELINE
    assert good["stages"]["failed"] is None
    assert len(good["versions"]) == 1
    version = good["versions"][0]
    assert version["id"] == good["active_version_id"] == good["latest_version_id"]
    assert version["number"] == 1
    assert version["status"] == "ready"
    assert version["size_bytes"] == len(NOTE.encode())
    assert version["checksum"].startswith("md5:")
    assert version["chunk_count"] == good["chunk_count"]

    assert bad["status"] == "failed"
    assert bad["error"]
    assert bad["active_version_id"] is None
    assert bad["chunk_count"] in (None, 0)
    assert bad["stages"]["failed"] is not None
    assert bad["stages"]["ready"] is None
    assert bad["versions"][0]["status"] == "failed"
    assert bad["versions"][0]["error"]["code"] == "binary_content"
    assert bad["versions"][0]["error"]["message"] == bad["error"]
    assert visible_chunks(clean_stack, bad["id"]) == []


def test_unknown_document_is_404(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    for document_id in (str(uuid.uuid4()), "not-a-uuid"):
        assert_error(api.get(f"/v1/documents/{document_id}"), 404, "document_not_found")
        assert_error(api.get(f"/v1/documents/{document_id}/events"), 404, "document_not_found")
        assert_error(api.post(f"/v1/documents/{document_id}/reindex"), 404, "document_not_found")
        assert_error(api.delete(f"/v1/documents/{document_id}"), 404, "document_not_found")


def test_list_documents_by_status_and_kb_name(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("mixed")
    good = api.ingest(kb["id"], "notes.md", NOTE.encode())
    bad = api.ingest(kb["id"], "blob.bin", BINARY)

    def ids(query: str, ref: str = kb["id"]) -> list[str]:
        response = api.get(f"/v1/knowledge-bases/{ref}/documents{query}")
        assert response.status_code == 200, response.get_data(as_text=True)
        return [document["id"] for document in body(response)["documents"]]

    assert ids("?status=ready") == [good["id"]]
    assert ids("?status=failed") == [bad["id"]]
    assert ids("?status=parsing") == []
    assert sorted(ids("")) == sorted([good["id"], bad["id"]])
    assert sorted(ids("", ref="mixed")) == sorted([good["id"], bad["id"]])
    assert ids("?status=ready", ref="mixed") == [good["id"]]
    assert_error(api.get(f"/v1/knowledge-bases/{kb['id']}/documents?status=bogus"), 400)


def test_documents_page_through_every_document_once(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("paging")
    uploaded = {
        api.upload(kb["id"], f"doc-{n}.md", f"# Doc {n}\n\nBody {n}.".encode())["document_id"]
        for n in range(4)
    }
    clean_stack.wait_idle()

    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        query = f"?limit=1&page_token={token}" if token else "?limit=1"
        response = api.get(f"/v1/knowledge-bases/{kb['id']}/documents{query}")
        assert response.status_code == 200
        page = body(response)
        assert len(page["documents"]) == 1
        seen += [document["id"] for document in page["documents"]]
        pages += 1
        token = page["next_page_token"]
        if token is None:
            break
        assert pages < 10, "paging does not end"
    assert pages == 4
    assert sorted(seen) == sorted(uploaded)

    whole = body(api.get(f"/v1/knowledge-bases/{kb['id']}/documents?limit=3"))
    assert len(whole["documents"]) == 3 and whole["next_page_token"]
    assert (
        body(api.get(f"/v1/knowledge-bases/{kb['id']}/documents?limit=4"))["next_page_token"]
        is None
    )


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("limit=0", "invalid_parameter"),
        ("limit=501", "invalid_parameter"),
        ("limit=ten", "invalid_parameter"),
        ("page_token=garbage", "invalid_page_token"),
        ("page_token=eyJ4IjogMX0=", "invalid_page_token"),  # {"x": 1}
        ("page_token=eyJvIjogLTF9", "invalid_page_token"),  # {"o": -1}
    ],
)
def test_bad_paging_parameters_are_400(clean_stack: LocalStack, query: str, code: str) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("badpaging")
    assert_error(api.get(f"/v1/knowledge-bases/{kb['id']}/documents?{query}"), 400, code)


def test_reindex_makes_a_new_version_and_keeps_only_its_chunks(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("reindex")
    first = api.ingest(kb["id"], "notes.md", NOTE.encode())
    old_version = first["active_version_id"]
    old_chunks = all_chunks(clean_stack, first["id"])
    assert {row[0] for row in old_chunks} == {old_version}

    response = api.post(f"/v1/documents/{first['id']}/reindex")
    assert response.status_code == 202, response.get_data(as_text=True)
    accepted = body(response)
    assert accepted["document_id"] == first["id"]
    assert accepted["version_id"] != old_version
    assert accepted["status"] == "received"
    clean_stack.wait_idle()

    document = api.document(first["id"])
    assert document["status"] == "ready"
    assert [(v["number"], v["status"]) for v in document["versions"]] == [
        (2, "ready"),
        (1, "superseded"),
    ]
    assert document["active_version_id"] == accepted["version_id"]
    rows = all_chunks(clean_stack, first["id"])
    assert {row[0] for row in rows} == {accepted["version_id"]}
    assert len(rows) == len(old_chunks) == document["chunk_count"]


def test_reindex_of_a_document_never_uploaded_is_409(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("awaiting")
    grant = api.post(
        f"/v1/knowledge-bases/{kb['id']}/uploads",
        json={"filename": "later.pdf", "content_type": "application/pdf", "size": 10},
    )
    assert grant.status_code == 201
    document_id = body(grant)["document_id"]
    assert api.document(document_id)["status"] == "awaiting_upload"
    assert_error(api.post(f"/v1/documents/{document_id}/reindex"), 409, "nothing_to_reindex")


# --------------------------------------------------------------------------- events (SSE)


@dataclass
class SseEvent:
    """One server-sent event."""

    id: str | None
    event: str | None
    data: str

    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.data))


def parse_sse(text: str) -> list[SseEvent]:
    """Events of an SSE stream (blocks separated by blank lines); comments are skipped."""
    events: list[SseEvent] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, list[str]] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))
        if "data" not in fields:
            continue  # e.g. the "retry:" block
        events.append(
            SseEvent(
                id=fields["id"][-1] if "id" in fields else None,
                event=fields["event"][-1] if "event" in fields else None,
                data="\n".join(fields["data"]),
            )
        )
    return events


def test_parse_sse_helper() -> None:
    text = (
        'retry: 2000\n\n: keep-alive\n\nid: 7\nevent: ready\ndata: {"a": 1}\n\ndata: x\ndata: y\n\n'
    )
    assert parse_sse(text) == [SseEvent("7", "ready", '{"a": 1}'), SseEvent(None, None, "x\ny")]


def test_events_stream_a_finished_document_in_order(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("events")
    document = api.ingest(kb["id"], "notes.md", NOTE.encode())

    response = api.get(f"/v1/documents/{document['id']}/events")
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    events = parse_sse(response.get_data(as_text=True))

    assert [event.event for event in events] == PIPELINE
    payloads = [event.json() for event in events]
    assert [payload["status"] for payload in payloads] == PIPELINE
    assert {payload["version_id"] for payload in payloads} == {document["active_version_id"]}
    ids = [int(event.id or 0) for event in events]
    assert ids == [payload["id"] for payload in payloads]
    assert ids == sorted(set(ids))

    resumed = api.get(
        f"/v1/documents/{document['id']}/events", headers={"Last-Event-ID": str(ids[2])}
    )
    assert resumed.status_code == 200
    rest = parse_sse(resumed.get_data(as_text=True))
    assert [event.event for event in rest] == PIPELINE[3:]
    assert [int(event.id or 0) for event in rest] == ids[3:]

    by_query = api.get(f"/v1/documents/{document['id']}/events?after={ids[-1]}")
    assert parse_sse(by_query.get_data(as_text=True)) == []
    bad = api.get(f"/v1/documents/{document['id']}/events", headers={"Last-Event-ID": "x"})
    assert_error(bad, 400, "invalid_parameter")


def test_events_of_a_failed_document_end_with_failed(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("failing")
    document = api.ingest(kb["id"], "blob.bin", BINARY)
    events = parse_sse(api.get(f"/v1/documents/{document['id']}/events").get_data(as_text=True))
    statuses = [event.event for event in events]
    assert statuses[0] == "received"
    assert statuses[-1] == "failed"
    assert "ready" not in statuses
    assert events[-1].json()["detail"]["error_code"] == "binary_content"


def test_an_event_stream_ends_within_its_limit_and_resumes(
    clean_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A document awaiting its upload never reaches ready/failed: only the limit (and
    # never a longer ?timeout=) ends its stream, so the function's timeout never does.
    api = Api(clean_stack)
    kb = api.create_kb("waiting")
    grant = api.post(
        f"/v1/knowledge-bases/{kb['id']}/uploads",
        json={"filename": "later.md", "content_type": "text/markdown", "size": 10},
    )
    assert grant.status_code == 201, grant.get_data(as_text=True)
    document_id = json.loads(grant.get_data(as_text=True))["document_id"]
    limited = clean_stack.runtime.settings.model_copy(update={"events_stream_s": 1})
    monkeypatch.setattr(clean_stack.runtime, "settings", limited)

    response = api.get(f"/v1/documents/{document_id}/events?timeout=3600")

    assert response.status_code == 200
    text = response.get_data(as_text=True)
    # The reconnect delay comes first: EventSource reconnects with Last-Event-ID.
    assert text.startswith("retry: ")
    events = parse_sse(text)
    assert all(event.event not in {"ready", "failed"} for event in events)
    last = max((int(event.id) for event in events if event.id), default=0)
    resumed = api.get(f"/v1/documents/{document_id}/events", headers={"Last-Event-ID": str(last)})
    assert resumed.status_code == 200
    assert [
        e for e in parse_sse(resumed.get_data(as_text=True)) if e.id and int(e.id) <= last
    ] == []
