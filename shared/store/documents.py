"""Documents: the statements over the ``documents`` table (more move here with versions)."""

from __future__ import annotations

import json

from shared.db import Database


def merge_metadata(database: Database, document_id: str, metadata: dict[str, str]) -> None:
    """Add ``metadata`` to the document's, replacing values of the same keys."""
    database.run(
        "UPDATE documents SET metadata = metadata || CAST(:m AS jsonb) WHERE id = CAST(:d AS uuid)",
        m=json.dumps(metadata),
        d=document_id,
    )
