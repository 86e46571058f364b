"""Which workspace and knowledge base a bucket object enters, through the real ``ingest``.

An operator's object names them by its path (``<workspace>/<knowledge-base>/<path...>``)
or its metadata (``ragline-workspace``, ``ragline-knowledge-base``). An object naming no
existing workspace, too short a path or an invalid knowledge base is refused: nothing
ingested, the event acknowledged, the refusal recorded once per object generation.
Each test sends the recorded GCS event (``tests/events/``) to the ``ingest`` target.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from scripts.localstack.stack import LocalStack
from shared.models import ParseRequested
from shared.store.rejections import IngestRejection, list_rejections
from tests.integration.test_handler_events import load_event, send_storage_event
from tests.support.api import Api, token_for
from tests.support.pipeline import TEXT_V1, Recorder

REPO_ROOT = Path(__file__).resolve().parents[2]
PLACED = {"ragline-workspace": "acme", "ragline-knowledge-base": "contracts"}


def _store(
    stack: LocalStack, name: str, text: str = TEXT_V1, metadata: dict[str, str] | None = None
) -> dict[str, Any]:
    """Write the object to the uploads bucket; return the event's values for it."""
    info = stack.objects.upload_bytes(
        stack.settings.upload_bucket, name, text.encode(), metadata=metadata
    )
    return {
        "bucket": info.bucket,
        "name": info.name,
        "generation": str(info.generation),
        "size": str(info.size),
        "md5_hash": base64.b64encode(bytes.fromhex(info.md5_hex or "")).decode(),
        "content_type": "text/markdown",
        "metadata": metadata or {},
    }


def _finalize(stack: LocalStack, obj: dict[str, Any]) -> None:
    response = send_storage_event(stack, load_event("gcs_object_finalized", **obj))
    assert response.status_code < 300, response.get_data(as_text=True)


def _rejections(stack: LocalStack) -> list[IngestRejection]:
    return list_rejections(stack.database)


def _count(stack: LocalStack, table: str) -> int:
    return int(stack.database.scalar(f"SELECT count(*) FROM {table}"))


def _create_workspace(stack: LocalStack, name: str) -> None:
    response = Api(stack).post("/v1/workspaces", json={"name": name})
    assert response.status_code == 201, response.get_data(as_text=True)


def _documents(api: Api, kb: str) -> dict[str, dict[str, Any]]:
    response = api.get(f"/v1/knowledge-bases/{kb}/documents")
    assert response.status_code == 200, response.get_data(as_text=True)
    return {d["source_key"]: d for d in (response.json or {})["documents"]}


def test_a_path_naming_a_workspace_lands_in_it_and_only_there(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    stack = clean_stack
    _create_workspace(stack, "acme")
    obj = _store(stack, "acme/contracts/2024/nda.md")
    _finalize(stack, obj)

    acme = Api(stack, workspace="acme")
    kbs = (acme.get("/v1/knowledge-bases").json or {})["knowledge_bases"]
    assert [kb["name"] for kb in kbs] == ["contracts"]
    assert kbs[0]["created_by"] == "bucket"
    assert kbs[0]["embedding_model"] == stack.settings.default_embedding_model
    document = _documents(acme, "contracts")["2024/nda.md"]
    assert document["filename"] == "nda.md"
    version_id = acme.document(document["id"])["versions"][0]["id"]
    assert ParseRequested(version_id=version_id) in [m for _, m in recorder.messages]

    owner = Api(stack)  # acts in the default workspace
    assert (owner.get("/v1/knowledge-bases").json or {})["knowledge_bases"] == []
    assert owner.get("/v1/knowledge-bases/contracts/documents").status_code == 404
    assert owner.get(f"/v1/documents/{document['id']}").status_code == 404
    assert _rejections(stack) == []


def test_an_unknown_workspace_is_refused_recorded_once_and_never_defaulted(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    stack = clean_stack
    Api(stack).create_kb("handbook")  # the default workspace has a same-named knowledge base
    obj = _store(stack, "nowhere/handbook/leave.md")
    _finalize(stack, obj)
    _finalize(stack, obj)  # at-least-once delivery: the same generation again
    stack.wait_idle()  # the stack's own bucket notifier may deliver it too

    for table in ("documents", "document_versions", "document_events"):
        assert _count(stack, table) == 0, table
    assert _count(stack, "knowledge_bases") == 1
    assert stack.database.scalar("SELECT count(*) FROM workspaces WHERE name = 'nowhere'") == 0
    assert not recorder.messages
    [refused] = _rejections(stack)
    assert (refused.bucket, refused.object_name, refused.generation) == (
        stack.settings.upload_bucket,
        "nowhere/handbook/leave.md",
        int(obj["generation"]),
    )
    assert (refused.reason, refused.workspace, refused.knowledge_base) == (
        "unknown_workspace",
        "nowhere",
        "handbook",
    )
    assert "nowhere" in refused.message and refused.created_at is not None
    assert refused.workspace_id is None, "a workspace that does not exist owns nothing"

    # A new generation of the object is a new drop, refused and recorded again.
    newer = _store(stack, "nowhere/handbook/leave.md", TEXT_V1 + " More.")
    _finalize(stack, newer)
    assert sorted(r.generation or 0 for r in _rejections(stack)) == sorted(
        [int(obj["generation"]), int(newer["generation"])]
    )
    assert _count(stack, "documents") == 0


def test_too_short_paths_are_refused(clean_stack: LocalStack, recorder: Recorder) -> None:
    stack = clean_stack
    for name in ("loose.md", "default/loose.md"):
        _finalize(stack, _store(stack, name))

    assert _count(stack, "documents") == 0 and _count(stack, "knowledge_bases") == 0
    assert {(r.object_name, r.reason) for r in _rejections(stack)} == {
        ("loose.md", "path_too_short"),
        ("default/loose.md", "path_too_short"),
    }
    assert not recorder.messages


def test_an_invalid_knowledge_base_name_is_refused_in_its_workspace(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    stack = clean_stack
    _finalize(stack, _store(stack, "default/-bad name/notes.md"))

    assert _count(stack, "documents") == 0 and _count(stack, "knowledge_bases") == 0
    [refused] = _rejections(stack)
    assert refused.reason == "invalid_knowledge_base_name"
    assert refused.workspace_id is not None, "the workspace exists: its admins may read it"


def test_metadata_places_an_object_and_its_deletion(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    stack = clean_stack
    _create_workspace(stack, "acme")
    # The metadata wins over a path that would name another workspace.
    obj = _store(stack, "default/inbox/nda.md", metadata=PLACED)
    _finalize(stack, obj)

    acme = Api(stack, workspace="acme")
    document = _documents(acme, "contracts")["default/inbox/nda.md"]
    assert document["filename"] == "nda.md"
    assert (Api(stack).get("/v1/knowledge-bases").json or {})["knowledge_bases"] == []

    # Deleted: the event carries the deleted generation's metadata, placed the same way.
    stack.objects.delete(obj["bucket"], obj["name"])
    response = send_storage_event(stack, load_event("gcs_object_deleted", **obj))
    assert response.status_code < 300
    assert acme.get(f"/v1/documents/{document['id']}").status_code == 404
    assert _count(stack, "documents") == 0
    assert _rejections(stack) == []


def test_incomplete_or_unknown_metadata_is_refused(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    stack = clean_stack
    half = {"ragline-knowledge-base": "contracts"}
    _finalize(stack, _store(stack, "default/inbox/a.md", metadata=half))
    _finalize(stack, _store(stack, "default/inbox/b.md", metadata=PLACED))  # no acme yet

    assert _count(stack, "documents") == 0 and _count(stack, "knowledge_bases") == 0
    assert {(r.object_name, r.reason) for r in _rejections(stack)} == {
        ("default/inbox/a.md", "incomplete_metadata"),
        ("default/inbox/b.md", "unknown_workspace"),
    }


def test_api_uploads_are_unchanged(clean_stack: LocalStack) -> None:
    stack = clean_stack
    api = Api(stack)
    kb = api.create_kb("uploads")
    document = api.ingest(kb["id"], "report.md", TEXT_V1.encode())
    assert document["status"] == "ready", document
    [version] = document["versions"]
    name = stack.database.scalar(
        "SELECT object_name FROM document_versions WHERE id = CAST(:v AS uuid)", v=version["id"]
    )
    assert name.startswith(f"_uploads/{document['id']}/")
    blob = stack.objects.stat(stack.settings.upload_bucket, name)
    assert blob is not None and blob.metadata["document-id"] == document["id"]

    # Its finalize event (the bucket's notification of the upload) maps to the same version.
    event = {
        "bucket": blob.bucket,
        "name": blob.name,
        "generation": str(blob.generation),
        "size": str(blob.size),
        "md5_hash": base64.b64encode(bytes.fromhex(blob.md5_hex or "")).decode(),
        "content_type": "text/markdown",
        "metadata": blob.metadata,
    }
    _finalize(stack, event)
    stack.wait_idle()
    assert len(api.document(document["id"])["versions"]) == 1
    assert _rejections(stack) == []


def test_workspace_admins_read_their_workspace_rejections_and_operators_read_all(
    clean_stack: LocalStack, recorder: Recorder
) -> None:
    stack = clean_stack
    _create_workspace(stack, "acme")
    _finalize(stack, _store(stack, "acme/-bad/a.md"))
    _finalize(stack, _store(stack, "ghost/kb/b.md"))
    _finalize(stack, _store(stack, "default/-bad/c.md"))

    owner = Api(stack)  # owner of both workspaces
    path = "/v1/workspaces/acme/ingest-rejections"
    listed = (owner.get(path).json or {})["rejections"]
    assert [(r["object"], r["reason"], r["workspace"]) for r in listed] == [
        ("acme/-bad/a.md", "invalid_knowledge_base_name", "acme")
    ]
    default = (owner.get("/v1/workspaces/default/ingest-rejections").json or {})["rejections"]
    assert [r["object"] for r in default] == ["default/-bad/c.md"], "ghost/ belongs to no one"
    assert owner.get(path + "?limit=0").status_code == 400

    viewer = Api(stack, token_for(stack, "viewer-1", workspace="acme", role="viewer"))
    assert viewer.get(path).status_code == 403
    stranger = Api(stack, token_for(stack, "stranger"))
    assert stranger.get(path).status_code == 404

    # Operators read every rejection, those naming no workspace included.
    env = dict(os.environ)  # the stack exported RAGLINE_DATABASE_URL: the CLI reads that
    command = [sys.executable, "-m", "scripts.cli", "rejections"]
    result = subprocess.run(
        [*command, "--json"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert {r["object"] for r in json.loads(result.stdout)} == {
        "acme/-bad/a.md",
        "ghost/kb/b.md",
        "default/-bad/c.md",
    }
    result = subprocess.run(
        [*command, "--workspace", "ghost"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "unknown_workspace" in result.stdout and "gs://" in result.stdout
    assert "a.md" not in result.stdout and "c.md" not in result.stdout
