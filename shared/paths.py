"""Where Ragline keeps objects in its buckets: every object name is built here.

Uploads bucket:
- ``<workspace>/<kb>/<path...>``: dropped by operators; ``<workspace>`` is an existing
  workspace's name, ``<kb>`` a knowledge-base name (created on first use) or id in it,
  and ``<path>`` identifies the document inside it.
- any name, with custom metadata ``ragline-workspace`` and ``ragline-knowledge-base``:
  dropped by operators, placed by its metadata (which wins over the path); the whole
  object name identifies the document.
- ``_uploads/<document_id>/<key>/<filename>``: written by the upload function
  (multipart; ``key`` from the content's MD5) or by a client through a signed URL
  (``key`` random); the document already exists. A distinct name per upload means a new
  upload never overwrites the object a version still in flight is reading.

Work bucket:
- ``parsed/<version_id>.json``: a version's parsed text, written by parse, read by chunk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.errors import RefusedObjectError
from shared.filenames import object_part
from shared.ids import is_uuid

UPLOADS_PREFIX = "_uploads/"
# Custom metadata placing an operator's object (GCS keeps custom metadata keys as given).
WORKSPACE_METADATA = "ragline-workspace"
KNOWLEDGE_BASE_METADATA = "ragline-knowledge-base"


def parsed_object_name(version_id: str) -> str:
    """Deterministic path of a version's parsed JSON in the work bucket."""
    return f"parsed/{version_id}.json"


def upload_object_name(document_id: str, key: str, filename: str) -> str:
    """Where an uploaded file for ``document_id`` is stored in the uploads bucket.

    A long ``filename`` is cut to a bounded segment (:func:`shared.filenames.object_part`);
    the document keeps the name itself.
    """
    return f"{UPLOADS_PREFIX}{document_id}/{key}/{object_part(filename)}"


@dataclass(frozen=True)
class DroppedObject:
    """An operator's object: the workspace and knowledge base it names, its key there."""

    workspace: str
    kb_ref: str
    source_key: str


def uploaded_document_id(name: str) -> str | None:
    """The document id of an upload-function object name, or None if it is not one."""
    if not name.startswith(UPLOADS_PREFIX):
        return None
    document_id = name[len(UPLOADS_PREFIX) :].split("/", 1)[0]
    return document_id if is_uuid(document_id) else None


def is_upload_object(name: str) -> bool:
    """Whether ``name`` lies under the upload function's prefix."""
    return name.startswith(UPLOADS_PREFIX)


def dropped_object(name: str, metadata: Mapping[str, str] | None = None) -> DroppedObject | None:
    """Where an operator's object belongs, by its metadata or else by its path.

    Args:
        name: The object's name in the uploads bucket.
        metadata: The object's custom metadata.

    Returns:
        The workspace, knowledge base and key the object names, or None if it is no
        operator's object (an upload function's object, a folder placeholder).

    Raises:
        RefusedObjectError: The object names no workspace and knowledge base
            (``path_too_short``, ``incomplete_metadata``).
    """
    if is_upload_object(name) or name.endswith("/"):
        return None
    workspace = _metadata_value(metadata, WORKSPACE_METADATA)
    kb_ref = _metadata_value(metadata, KNOWLEDGE_BASE_METADATA)
    if workspace or kb_ref:
        if not (workspace and kb_ref):
            raise RefusedObjectError(
                f"metadata must name both {WORKSPACE_METADATA} and {KNOWLEDGE_BASE_METADATA}",
                code="incomplete_metadata",
                workspace=workspace,
                knowledge_base=kb_ref,
            )
        return DroppedObject(workspace, kb_ref, name)
    parts = name.split("/", 2)
    if len(parts) < 3 or not parts[2]:
        raise RefusedObjectError(
            "an object must lie under <workspace>/<knowledge-base>/ or carry"
            f" {WORKSPACE_METADATA} and {KNOWLEDGE_BASE_METADATA} metadata",
            code="path_too_short",
            workspace=parts[0] if len(parts) > 1 else None,
        )
    return DroppedObject(parts[0], parts[1], parts[2])


def _metadata_value(metadata: Mapping[str, str] | None, key: str) -> str | None:
    for name, value in (metadata or {}).items():
        if name.lower() == key:
            return str(value).strip() or None
    return None
