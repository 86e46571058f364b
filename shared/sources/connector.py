"""The contract between a sync run and the connector of one source type.

A sync run walks a source as a tree of items: it starts from the connector's roots and
visits each item once (one Cloud Tasks task per item, so a run fans out and resumes).
Visiting an item may yield a document (new or changed content), say the item is
unchanged since the revision the run already holds, and name child items to visit next
(the pages a page links to, the objects under a bucket prefix). A connector does no
bookkeeping of its own: the sync run records items, revisions, counts and errors, and
hands documents to the same pipeline as uploads.

The URL crawler, the bucket prefix lister and the drive connectors all implement
:class:`Connector`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol


@dataclass(frozen=True)
class ItemRef:
    """An item of a source to visit.

    Attributes:
        key: The item's identity within its source, stable across syncs (a normalized
            URL, a ``gs://`` URI, a drive file id). A document from a source is keyed
            by it.
        depth: Hops from a root (roots are 0); connectors that crawl bound it.
        hints: Connector-specific facts learned when the item was found (a sitemap's
            ``lastmod``, an object's generation), JSON-serializable.
    """

    key: str
    depth: int = 0
    hints: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Revision:
    """What a connector needs to ask "changed since?" next time.

    Attributes:
        etag: The server's entity tag (HTTP ``ETag``, an object's ``etag``).
        last_modified: The server's ``Last-Modified`` value, as sent.
        version: Any other revision token (an object generation, a drive revision id).
    """

    etag: str | None = None
    last_modified: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class FetchedDocument:
    """New or changed content to ingest as the item's document.

    Attributes:
        content: The bytes, as fetched (the parser detects the type from them).
        filename: A file name for the document (from the URL path, the object name,
            the drive file's title).
        content_type: The type the server declared, if any (the parser does not trust it).
        origin_url: Where the content was fetched from after redirects (shown by the
            viewer as the document's origin).
        revision: The revision to store for the next sync's conditional request.
    """

    content: bytes
    filename: str
    content_type: str | None
    origin_url: str
    revision: Revision


class Outcome(Enum):
    """What visiting an item came to."""

    FETCHED = "fetched"  # a document with content: added or updated
    UNCHANGED = "unchanged"  # the stored revision is current; nothing to parse
    GONE = "gone"  # the item no longer exists (404, 410, object deleted): delete its document
    SKIPPED = "skipped"  # not a document (an index page only linking, a disallowed type)
    FAILED = "failed"  # refused (unsafe URL, robots.txt) or failed; ``error`` says why


@dataclass(frozen=True)
class Visit:
    """The result of visiting one item.

    Attributes:
        outcome: What happened.
        document: The content when ``outcome`` is ``FETCHED``.
        children: Items found while visiting (links, listed objects), unfiltered by
            what the run already visited; the connector has applied its own scope rules
            (origin, depth, patterns, robots.txt).
        error: Why, when ``outcome`` is ``FAILED`` or ``SKIPPED`` (a short sentence).
        error_code: A stable code for the reason (``url_forbidden``, ``robots_disallowed``,
            ``too_large``, ``http_500``...).
    """

    outcome: Outcome
    document: FetchedDocument | None = None
    children: Sequence[ItemRef] = ()
    error: str | None = None
    error_code: str | None = None


class Connector(Protocol):
    """One source type's way of listing and fetching its items."""

    def roots(self) -> Sequence[ItemRef]:
        """The items a sync starts from (a start URL and its sitemap's URLs; a prefix)."""
        ...

    def visit(self, item: ItemRef, previous: Revision | None) -> Visit:
        """Visit ``item``; ``previous`` is the revision the last sync stored for it.

        Raises:
            shared.errors.UpstreamError: A transient failure (timeout, 5xx, 429): the
                task is retried. Permanent failures are a ``FAILED`` visit instead.
        """
        ...
