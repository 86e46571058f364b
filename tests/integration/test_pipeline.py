"""The ingestion pipeline end to end on the local stack, under at-least-once delivery."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scripts.localstack.stack import LocalStack
from shared.errors import TransientError
from tests.support.api import Api, all_chunks, visible_chunks

REPORT = (
    "# Quarterly report\n\n"
    "Revenue grew in every segment. Services revenue reached a record.\n\n"
    "## Risks\n\n"
    + "Supply constraints may affect margins in the coming quarters. " * 60
    + "\n\n## Outlook\n\n"
    + "Management expects continued growth in services and wearables. " * 60
)


def test_markdown_document_becomes_ready_with_every_stage(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("reports")
    document = api.ingest(kb["id"], "report.md", REPORT.encode())

    assert document["status"] == "ready", document
    assert document["chunk_count"] == len(visible_chunks(clean_stack, document["id"])) > 1
    stages = document["stages"]
    order = ["received", "parsing", "chunking", "embedding", "indexing", "ready"]
    assert all(stages[name] for name in order)
    assert [stages[name] for name in order] == sorted(stages[name] for name in order)
    chunks = visible_chunks(clean_stack, document["id"])
    assert all(chunk[7] is not None for chunk in chunks), "every chunk is embedded"
    assert any("Risks" in chunk[6] for chunk in chunks), "heading paths are recorded"


def test_sec10q_corpus_all_ready_with_pages(clean_stack: LocalStack, corpus: Path) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("sec-10q")
    pdfs = sorted(corpus.glob("*.pdf"))
    assert len(pdfs) == 20
    accepted = [api.upload(kb["id"], pdf.name, pdf.read_bytes()) for pdf in pdfs]
    clean_stack.wait_idle(900)

    for item, pdf in zip(accepted, pdfs, strict=True):
        document = api.document(item["document_id"])
        assert document["status"] == "ready", (pdf.name, document["error"])
        assert document["page_count"] > 0
    totals = clean_stack.database.run(
        "SELECT count(*), count(page_start), count(embedding), count(DISTINCT document_id)"
        " FROM chunks"
    )[0]
    assert totals[0] > 1000
    assert totals[0] == totals[1] == totals[2], "every chunk has a page and an embedding"
    assert totals[3] == 20


def _chunk_set(stack: LocalStack, document_id: str) -> list[tuple[Any, ...]]:
    return visible_chunks(stack, document_id)


def test_duplicate_and_out_of_order_delivery_yield_the_same_chunks(
    clean_stack: LocalStack, corpus: Path
) -> None:
    api = Api(clean_stack)
    data = (corpus / "2023 Q2 NVDA.pdf").read_bytes()
    baseline_kb = api.create_kb("once")
    baseline = api.ingest(baseline_kb["id"], "nvda.pdf", data)
    assert baseline["status"] == "ready"

    clean_stack.config.delivery.duplicate = True
    clean_stack.config.delivery.max_jitter_s = 0.3
    twice_kb = api.create_kb("twice")
    twice = api.ingest(twice_kb["id"], "nvda.pdf", data)

    assert twice["status"] == "ready"
    assert len(twice["versions"]) == 1
    assert _chunk_set(clean_stack, twice["id"]) == _chunk_set(clean_stack, baseline["id"])
    assert len(all_chunks(clean_stack, twice["id"])) == twice["chunk_count"]
    statuses = clean_stack.database.run(
        "SELECT status FROM document_events WHERE document_id = CAST(:d AS uuid) ORDER BY id",
        d=twice["id"],
    )
    assert [row[0] for row in statuses] == [
        "received",
        "parsing",
        "chunking",
        "embedding",
        "indexing",
        "ready",
    ], "a redelivered message re-enters its stage without a second progress event"


def test_same_file_again_makes_no_new_version(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("dedupe")
    first = api.ingest(kb["id"], "report.md", REPORT.encode())
    chunks_before = all_chunks(clean_stack, first["id"])

    again = api.upload(kb["id"], "report.md", REPORT.encode())
    clean_stack.wait_idle()

    assert again["duplicate"] is True
    assert again["version_id"] == first["active_version_id"]
    document = api.document(first["id"])
    assert len(document["versions"]) == 1
    assert all_chunks(clean_stack, first["id"]) == chunks_before


def test_changed_file_swaps_to_the_new_version_only(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("versions")
    first = api.ingest(kb["id"], "report.md", REPORT.encode())
    changed = REPORT.replace("Revenue grew", "Revenue fell") + "\n\nA new closing paragraph."
    second = api.ingest(kb["id"], "report.md", changed.encode())

    assert second["id"] == first["id"]
    assert [v["status"] for v in second["versions"]] == ["ready", "superseded"]
    assert second["active_version_id"] == second["versions"][0]["id"]
    rows = all_chunks(clean_stack, first["id"])
    assert {row[0] for row in rows} == {second["active_version_id"]}, "old chunks are gone"
    texts = " ".join(chunk[1] for chunk in visible_chunks(clean_stack, first["id"]))
    assert "Revenue fell" in texts and "Revenue grew" not in texts


class FailOnce:
    """Wraps a step so its first call raises a transient error (before or after working)."""

    def __init__(self, step: Callable[..., Any], after: bool) -> None:
        self.step = step
        self.after = after
        self.failed = False
        self.lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            fail, self.failed = not self.failed, True
        if fail and not self.after:
            raise TransientError("injected failure before the step")
        result = self.step(*args, **kwargs)
        if fail:
            raise TransientError("injected failure after the step did its work")
        return result


STEPS = {
    "ingest": ("functions.ingest", "ingest_finalized"),
    "parse": ("functions.parse", "parse_version"),
    "chunk": ("functions.chunk", "chunk_version"),
    "embed": ("functions.embed", "embed_batch"),
    "index": ("functions.index", "index_version"),
}


@pytest.mark.parametrize("after", [False, True], ids=["before-work", "after-work"])
@pytest.mark.parametrize("step", list(STEPS))
def test_a_transient_error_once_in_any_step_loses_nothing(
    clean_stack: LocalStack, monkeypatch: pytest.MonkeyPatch, step: str, after: bool
) -> None:
    import importlib

    api = Api(clean_stack)
    baseline = api.ingest(api.create_kb("baseline")["id"], "report.md", REPORT.encode())
    module_name, attribute = STEPS[step]
    module = importlib.import_module(module_name)
    flaky = FailOnce(getattr(module, attribute), after)
    monkeypatch.setattr(module, attribute, flaky)

    kb = api.create_kb("flaky")
    if step == "ingest":
        # Only bucket events reach ingest: drop the file into the bucket.
        clean_stack.objects.upload_bytes(
            clean_stack.settings.upload_bucket,
            f"{clean_stack.settings.default_workspace}/flaky/report.md",
            REPORT.encode(),
        )
        clean_stack.wait_idle(10)
        clean_stack.wait_idle()
        rows = clean_stack.database.run(
            "SELECT id::text FROM documents WHERE kb_id = CAST(:k AS uuid)", k=kb["id"]
        )
        document = api.document(rows[0][0])
    else:
        document = api.ingest(kb["id"], "report.md", REPORT.encode())

    assert flaky.failed
    assert document["status"] == "ready", document
    assert len(document["versions"]) == 1
    assert _chunk_set(clean_stack, document["id"]) == _chunk_set(clean_stack, baseline["id"])


@pytest.mark.parametrize("step", ["parse", "chunk", "embed", "index"])
def test_a_step_failing_every_time_fails_the_version_through_the_dead_letter(
    clean_stack: LocalStack, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    import importlib

    api = Api(clean_stack)
    kb = api.create_kb("doomed")
    healthy = api.ingest(kb["id"], "healthy.md", b"# Healthy\n\nThis one is fine.")
    module_name, attribute = STEPS[step]

    def always_down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError(f"{step} dependency is down")

    monkeypatch.setattr(importlib.import_module(module_name), attribute, always_down)
    document = api.ingest(kb["id"], "report.md", REPORT.encode())

    assert document["status"] == "failed"
    failed = document["versions"][0]["error"]
    assert failed["code"] == "delivery_failed"
    assert f"{step} dependency is down" in failed["message"]
    assert all_chunks(clean_stack, document["id"]) == [], "a failed version leaves no chunks"
    assert api.document(healthy["id"])["status"] == "ready"


def test_delete_removes_chunks_versions_and_objects(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("deleting")
    document = api.ingest(kb["id"], "report.md", REPORT.encode())
    document = api.ingest(kb["id"], "report.md", (REPORT + "\n\nMore.").encode())
    keep = api.ingest(kb["id"], "keep.md", b"# Keep\n\nKeep me around.")

    response = api.delete(f"/v1/documents/{document['id']}")
    assert response.status_code == 204
    clean_stack.wait_idle()

    assert api.get(f"/v1/documents/{document['id']}").status_code == 404
    db = clean_stack.database
    for table, column in (
        ("chunks", "document_id"),
        ("document_versions", "document_id"),
        ("document_events", "document_id"),
        ("documents", "id"),
    ):
        count = db.scalar(
            f"SELECT count(*) FROM {table} WHERE {column} = CAST(:d AS uuid)", d=document["id"]
        )
        assert count == 0, table
    client = clean_stack.objects.client
    names = [
        blob.name
        for bucket in (clean_stack.settings.upload_bucket, clean_stack.settings.work_bucket)
        for blob in client.list_blobs(bucket)
    ]
    assert not [name for name in names if document["id"] in name]
    assert not [name for version in document["versions"] for name in names if version["id"] in name]
    assert api.document(keep["id"])["status"] == "ready"
    assert api.delete(f"/v1/documents/{document['id']}").status_code == 404
