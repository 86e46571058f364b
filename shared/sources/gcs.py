"""The ``gcs`` connector: the objects under a bucket prefix the deployment may read.

The root is the prefix: visiting it lists the objects under it (each a child). Visiting
an object compares its generation with the revision the last sync stored: the same
generation is ``UNCHANGED`` (nothing downloaded); another is downloaded (``FETCHED``);
an object no longer there is ``GONE``.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.sources.connector import FetchedDocument, ItemRef, Outcome, Revision, Visit
from shared.storage import ObjectMissingError, ObjectStore


def gs_uri(bucket: str, name: str) -> str:
    """The ``gs://`` URI of an object (an item's key and its origin URL)."""
    return f"gs://{bucket}/{name}"


class GcsConnector:
    """Lists and fetches the objects under ``gs://bucket/prefix``.

    Args:
        objects: The object store (its client's identity must be granted read).
        bucket: The bucket.
        prefix: The object name prefix ('' for the whole bucket).
        max_bytes: Larger objects are a ``FAILED`` item (``too_large``), not downloaded.
    """

    def __init__(self, objects: ObjectStore, bucket: str, prefix: str, *, max_bytes: int) -> None:
        self._objects = objects
        self._bucket = bucket
        self._prefix = prefix
        self._max_bytes = max_bytes
        self._root = gs_uri(bucket, prefix)

    def roots(self) -> Sequence[ItemRef]:
        """The prefix itself."""
        return [ItemRef(self._root, 0, {"listing": True})]

    def visit(self, item: ItemRef, previous: Revision | None) -> Visit:
        """List the prefix, or fetch one object unless its generation is the stored one."""
        if item.key == self._root and item.depth == 0:
            return self._list(item)
        name = item.key.removeprefix(f"gs://{self._bucket}/")
        info = self._objects.stat(self._bucket, name)
        if info is None:
            return Visit(Outcome.GONE)
        version = None if info.generation is None else str(info.generation)
        if previous is not None and version is not None and previous.version == version:
            return Visit(Outcome.UNCHANGED)
        if info.size > self._max_bytes:
            return Visit(
                Outcome.FAILED,
                error=f"the object is {info.size} bytes; the limit is {self._max_bytes}",
                error_code="too_large",
            )
        try:
            content = self._objects.download_bytes(self._bucket, name, info.generation)
        except ObjectMissingError:
            return Visit(Outcome.GONE)  # deleted or replaced since the stat
        return Visit(
            Outcome.FETCHED,
            FetchedDocument(
                content=content,
                filename=name.rsplit("/", 1)[-1],
                content_type=info.content_type,
                origin_url=item.key,
                revision=Revision(etag=info.md5_hex, version=version),
            ),
        )

    def _list(self, item: ItemRef) -> Visit:
        children = [
            ItemRef(gs_uri(self._bucket, info.name), item.depth + 1, {"size": info.size})
            for info in self._objects.list_objects(self._bucket, self._prefix)
            # Folder placeholders hold no document.
            if not info.name.endswith("/")
        ]
        return Visit(Outcome.SKIPPED, children=children)
