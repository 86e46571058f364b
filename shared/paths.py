"""Where Ragline keeps objects in its buckets: every object name is built here.

Uploads bucket:
- ``<kb>/<path...>``: dropped by operators; ``<kb>`` is a knowledge-base name (created
  on first use) or id, and ``<path>`` identifies the document inside it.
- ``_uploads/<document_id>/<key>/<filename>``: written by the upload function
  (multipart; ``key`` from the content's MD5) or by a client through a signed URL
  (``key`` random); the document already exists. A distinct name per upload means a new
  upload never overwrites the object a version still in flight is reading.

Work bucket:
- ``parsed/<version_id>.json``: a version's parsed text, written by parse, read by chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.filenames import object_part
from shared.ids import is_uuid

UPLOADS_PREFIX = "_uploads/"


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
    """An operator's object: the knowledge base it names and its key inside it."""

    kb_ref: str
    source_key: str

    @property
    def filename(self) -> str:
        """The object's base name."""
        return self.source_key.rsplit("/", 1)[-1]


def uploaded_document_id(name: str) -> str | None:
    """The document id of an upload-function object name, or None if it is not one."""
    if not name.startswith(UPLOADS_PREFIX):
        return None
    document_id = name[len(UPLOADS_PREFIX) :].split("/", 1)[0]
    return document_id if is_uuid(document_id) else None


def is_upload_object(name: str) -> bool:
    """Whether ``name`` lies under the upload function's prefix."""
    return name.startswith(UPLOADS_PREFIX)


def dropped_object(name: str) -> DroppedObject | None:
    """The knowledge base and key of an operator's object, or None outside any folder."""
    if is_upload_object(name) or name.endswith("/"):
        return None
    kb_ref, _, source_key = name.partition("/")
    if not kb_ref or not source_key:
        return None
    return DroppedObject(kb_ref, source_key)
