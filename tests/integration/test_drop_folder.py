"""The drop folder: files under ``drop/<workspace>/<knowledge-base>/...`` become documents.

The local stack's default workspace is ``default`` (``RAGLINE_DEFAULT_WORKSPACE``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scripts.localstack.dropfolder import DropFolder
from scripts.localstack.stack import LocalStack
from shared.store.rejections import IngestRejection, list_rejections
from tests.support.api import Api, all_chunks, visible_chunks

POLICY = (
    "# Leave policy\n\n"
    "Employees accrue leave monthly.\n\n"
    "## Carry-over\n\n" + "Unused leave carries over to the next year up to a cap. " * 60
)
INTRO = "Welcome to the handbook.\n\n" + "This handbook explains how we work together. " * 40


def drop(stack: LocalStack) -> DropFolder:
    assert stack.drop is not None, "the test stack runs the drop folder"
    return stack.drop


def write(stack: LocalStack, relative: str, data: bytes) -> Path:
    path = drop(stack).root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Wait until ``condition`` holds (the drop folder also syncs on its own thread)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def settle(stack: LocalStack) -> None:
    """Sync the folder (a file goes up once it is unchanged across two scans), deliver the
    bucket's events and wait for the pipeline."""
    drop(stack).sync_once()
    drop(stack).sync_once()
    assert stack.notifier is not None
    stack.notifier.poll_once()
    stack.wait_idle()


def bucket_names(stack: LocalStack) -> set[str]:
    client = stack.objects.client
    return {blob.name for blob in client.list_blobs(stack.settings.upload_bucket)}


def documents(api: Api, kb: str) -> dict[str, dict[str, Any]]:
    """The knowledge base's documents by source key."""
    response = api.get(f"/v1/knowledge-bases/{kb}/documents")
    assert response.status_code == 200, response.get_data(as_text=True)
    return {d["source_key"]: d for d in (response.json or {})["documents"]}


def kb_names(api: Api) -> list[str]:
    return [kb["name"] for kb in (api.get("/v1/knowledge-bases").json or {})["knowledge_bases"]]


def test_new_files_create_the_knowledge_base_and_ready_documents(
    clean_stack: LocalStack,
) -> None:
    api = Api(clean_stack)
    write(clean_stack, "default/handbook/intro.txt", INTRO.encode())
    write(clean_stack, "default/handbook/policies/hr/leave.md", POLICY.encode())
    settle(clean_stack)

    assert kb_names(api) == ["handbook"]
    docs = documents(api, "handbook")
    assert set(docs) == {"intro.txt", "policies/hr/leave.md"}
    leave = api.document(docs["policies/hr/leave.md"]["id"])
    assert leave["filename"] == "leave.md"
    assert leave["status"] == "ready", leave
    assert leave["chunk_count"] == len(visible_chunks(clean_stack, leave["id"])) > 1
    assert any("Carry-over" in chunk[6] for chunk in visible_chunks(clean_stack, leave["id"]))
    intro = api.document(docs["intro.txt"]["id"])
    assert intro["status"] == "ready", intro
    assert intro["chunk_count"] == len(visible_chunks(clean_stack, intro["id"])) >= 1


def test_a_file_in_an_existing_knowledge_base_joins_it(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    kb = api.create_kb("existing", chunk_tokens=64, chunk_overlap=0)
    write(clean_stack, "default/existing/leave.md", POLICY.encode())
    settle(clean_stack)

    assert kb_names(api) == ["existing"]
    document = documents(api, kb["id"])["leave.md"]
    assert document["knowledge_base_id"] == kb["id"]
    assert document["status"] == "ready"
    assert document["chunk_count"] > 10, "the knowledge base's small chunks are used"


def test_replacing_a_file_makes_a_new_version_with_only_new_chunks(
    clean_stack: LocalStack,
) -> None:
    api = Api(clean_stack)
    path = write(clean_stack, "default/handbook/leave.md", POLICY.encode())
    settle(clean_stack)
    first = api.document(documents(api, "handbook")["leave.md"]["id"])
    assert first["status"] == "ready"

    changed = POLICY.replace("accrue leave monthly", "accrue leave weekly") + "\n\nNew rules."
    path.write_bytes(changed.encode())
    settle(clean_stack)

    document = api.document(first["id"])
    assert document["status"] == "ready", document
    assert [(v["number"], v["status"]) for v in document["versions"]] == [
        (2, "ready"),
        (1, "superseded"),
    ]
    assert document["active_version_id"] == document["versions"][0]["id"]
    assert {row[0] for row in all_chunks(clean_stack, first["id"])} == {
        document["active_version_id"]
    }, "the old version's chunks are gone"
    texts = " ".join(chunk[1] for chunk in visible_chunks(clean_stack, first["id"]))
    assert "accrue leave weekly" in texts and "accrue leave monthly" not in texts
    assert list(documents(api, "handbook")) == ["leave.md"]


def test_rewriting_the_same_bytes_makes_no_new_version(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    path = write(clean_stack, "default/handbook/leave.md", POLICY.encode())
    settle(clean_stack)
    document_id = documents(api, "handbook")["leave.md"]["id"]
    before = clean_stack.objects.stat(
        clean_stack.settings.upload_bucket, "default/handbook/leave.md"
    )
    assert before is not None
    chunks_before = all_chunks(clean_stack, document_id)

    path.write_bytes(POLICY.encode())
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # surely "changed"
    settle(clean_stack)

    after = clean_stack.objects.stat(
        clean_stack.settings.upload_bucket, "default/handbook/leave.md"
    )
    assert after is not None
    assert after.generation == before.generation, "no new object generation was uploaded"
    document = api.document(document_id)
    assert len(document["versions"]) == 1
    assert document["status"] == "ready"
    assert all_chunks(clean_stack, document_id) == chunks_before


def test_deleting_a_file_deletes_its_document(clean_stack: LocalStack) -> None:
    api = Api(clean_stack)
    gone = write(clean_stack, "default/handbook/policies/leave.md", POLICY.encode())
    write(clean_stack, "default/handbook/intro.txt", INTRO.encode())
    settle(clean_stack)
    docs = documents(api, "handbook")
    document_id = docs["policies/leave.md"]["id"]
    assert api.document(document_id)["status"] == "ready"
    assert all_chunks(clean_stack, document_id)

    gone.unlink()
    bucket = clean_stack.settings.upload_bucket
    wait_for(
        lambda: clean_stack.objects.stat(bucket, "default/handbook/policies/leave.md") is None,
        "the drop folder to delete the object",
    )
    assert clean_stack.notifier is not None
    clean_stack.notifier.poll_once()
    clean_stack.wait_idle()

    assert api.get(f"/v1/documents/{document_id}").status_code == 404
    assert all_chunks(clean_stack, document_id) == []
    remaining = documents(api, "handbook")
    assert list(remaining) == ["intro.txt"]
    assert api.document(remaining["intro.txt"]["id"])["status"] == "ready"


def rejections(stack: LocalStack) -> dict[str, IngestRejection]:
    """The recorded rejections by object name."""
    return {r.object_name: r for r in list_rejections(stack.database)}


def test_hidden_and_temporary_files_are_ignored_and_loose_files_refused(
    clean_stack: LocalStack,
) -> None:
    api = Api(clean_stack)
    write(clean_stack, "default/handbook/.DS_Store", b"\x00\x00\x00\x01Bud1")
    write(clean_stack, "default/handbook/.drafts/secret.md", b"# Secret\n\nNot for the index.")
    write(clean_stack, "default/handbook/~$leave.docx", b"lock file")
    write(clean_stack, "default/handbook/copy.md.part", b"# Half\n\nHalf copied.")
    write(clean_stack, "default/.hidden-kb/notes.md", b"# Hidden\n\nA hidden folder.")
    write(clean_stack, ".hidden-workspace/kb/notes.md", b"# Hidden\n\nA hidden folder.")
    write(clean_stack, "loose.md", b"# Loose\n\nNot in any workspace folder.")
    write(clean_stack, "default/loose.md", b"# Loose\n\nNot in any knowledge base folder.")
    write(clean_stack, "default/handbook/leave.md", POLICY.encode())
    settle(clean_stack)

    # Loose files go up like any object and the bucket's rule refuses them, with a reason.
    assert bucket_names(clean_stack) == {
        "default/handbook/leave.md",
        "loose.md",
        "default/loose.md",
    }
    assert kb_names(api) == ["handbook"]
    assert list(documents(api, "handbook")) == ["leave.md"]
    assert clean_stack.database.scalar("SELECT count(*) FROM documents") == 1
    refused = rejections(clean_stack)
    assert set(refused) == {"loose.md", "default/loose.md"}
    assert {r.reason for r in refused.values()} == {"path_too_short"}


def test_a_file_for_another_workspace_lands_there_and_only_there(clean_stack: LocalStack) -> None:
    owner = Api(clean_stack)
    assert owner.post("/v1/workspaces", json={"name": "research"}).status_code == 201
    write(clean_stack, "research/papers/study.md", POLICY.encode())
    settle(clean_stack)

    research = Api(clean_stack, workspace="research")
    assert kb_names(research) == ["papers"]
    study = research.document(documents(research, "papers")["study.md"]["id"])
    assert study["status"] == "ready", study
    assert kb_names(owner) == [], "the default workspace got nothing"
    assert owner.get("/v1/knowledge-bases/papers/documents").status_code == 404
    assert owner.get(f"/v1/documents/{study['id']}").status_code == 404
    assert rejections(clean_stack) == {}


def test_a_file_naming_an_unknown_workspace_is_refused_and_recorded(
    clean_stack: LocalStack,
) -> None:
    path = write(clean_stack, "nowhere/handbook/leave.md", POLICY.encode())
    settle(clean_stack)

    db = clean_stack.database
    for table in ("documents", "document_versions", "knowledge_bases"):
        assert db.scalar(f"SELECT count(*) FROM {table}") == 0, table
    assert db.scalar("SELECT count(*) FROM workspaces WHERE name = 'nowhere'") == 0
    obj = clean_stack.objects.stat(clean_stack.settings.upload_bucket, "nowhere/handbook/leave.md")
    assert obj is not None
    refused = rejections(clean_stack)["nowhere/handbook/leave.md"]
    assert (refused.reason, refused.workspace, refused.knowledge_base) == (
        "unknown_workspace",
        "nowhere",
        "handbook",
    )
    assert refused.generation == obj.generation and refused.workspace_id is None
    assert "nowhere" in refused.message

    # Its deletion finds nothing to delete and records nothing more.
    path.unlink()
    settle(clean_stack)
    assert list(rejections(clean_stack)) == ["nowhere/handbook/leave.md"]
    assert db.scalar("SELECT count(*) FROM documents") == 0
