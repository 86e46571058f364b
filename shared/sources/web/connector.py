"""The ``url`` source type's connector: one web page, or a crawl from it.

:class:`UrlConnector` implements :class:`shared.sources.connector.Connector` for a
sync run. Visiting a URL:

1. the URL is checked by the SSRF guard (refused: ``FAILED`` ``url_forbidden``, and no
   connection is made);
2. robots.txt of its origin must allow it (else ``FAILED`` ``robots_disallowed``, and
   the page is never requested);
3. it is fetched, conditionally on the stored revision (see below), redirects followed
   by hand and each hop checked again;
4. the bytes decide the type: an HTML page is a document and, in a crawl below
   ``max_depth``, names its in-scope links as children (depth + 1); a PDF, DOCX,
   Markdown or text file is a document with no children; anything else is
   ``SKIPPED``. 404 and 410 are ``GONE``; a refused redirect ``url_forbidden``; a body
   over the limit ``too_large``; other 4xx ``http_<status>``; timeouts, 5xx and 429
   raise a retryable :class:`~shared.errors.UpstreamError`.

Revisions and the children of an unchanged page: a run learns which pages still exist
from the children its visits return, so a page that is unchanged must still name its
links, or the pages below it would look vanished and be deleted. A ``304`` has no body
to read links from. So the revision stored for a document records its kind and a
SHA-256 of its bytes (``Revision.version``, ``"html:<hex>"``), and:

* a resource whose links do not matter (a PDF or DOCX, any page in a single-page
  source, a page at ``max_depth``) is fetched conditionally (``If-None-Match`` /
  ``If-Modified-Since``): ``304`` is ``UNCHANGED`` with no body transferred;
* an HTML page whose links are followed is fetched in full; when its bytes hash to the
  stored digest it is ``UNCHANGED`` (nothing to parse) *with* its children, read from
  the bytes with the HTML parser.

Either way every visit of an existing page returns its complete set of children, so a
run may treat any item it did not reach as vanished.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from shared.config import Settings
from shared.errors import (
    LimitExceededError,
    PermanentError,
    UnsafeUrlError,
)
from shared.net.client import SafeHttpClient
from shared.net.guard import UrlGuard
from shared.parsing.detect import DOCX, HTML, MARKDOWN, PDF, PLAIN, sniff
from shared.sources.connector import FetchedDocument, ItemRef, Outcome, Revision, Visit
from shared.sources.web.config import UrlSourceConfig
from shared.sources.web.fetch import FetchResult, PageFetcher
from shared.sources.web.links import CrawlScope, extract_links, origin_of
from shared.sources.web.robots import RobotsCache
from shared.sources.web.sitemap import read_sitemaps

# The types a web source ingests, by the name their revision records.
_KINDS = {HTML: "html", PDF: "pdf", DOCX: "docx", MARKDOWN: "markdown", PLAIN: "text"}
_SUFFIXES = {"html": (".html", ".htm"), "pdf": (".pdf",), "docx": (".docx",)}


def check_source_url(config: UrlSourceConfig, guard: UrlGuard) -> None:
    """Refuse a source whose URL the guard refuses (when the source is created).

    Raises:
        UnsafeUrlError: The URL is not one Ragline connects to (an HTTP 400).
    """
    guard.check(config.url)


def url_connector(
    config: Mapping[str, Any], client: SafeHttpClient, settings: Settings
) -> UrlConnector:
    """The connector of a ``url`` source from its stored configuration.

    Args:
        config: The source's ``config`` object.
        client: The guarded client (``runtime.outbound``).
        settings: For the fetch limits.
    """
    return UrlConnector(
        UrlSourceConfig.model_validate(config), PageFetcher.from_settings(client, settings)
    )


class UrlConnector:
    """Lists and fetches the pages of a ``url`` source.

    Args:
        config: The source's configuration.
        fetcher: The safe fetcher every request goes through.
        robots: robots.txt rules, cached per origin (default: a new cache on
            ``fetcher``, so one per connector instance).
    """

    def __init__(
        self, config: UrlSourceConfig, fetcher: PageFetcher, *, robots: RobotsCache | None = None
    ) -> None:
        self.config = config
        self.fetcher = fetcher
        self._robots = robots or RobotsCache(fetcher)
        self._scope = CrawlScope(
            config.url,
            allow_origins=config.allow_origins,
            same_origin=config.same_origin,
            include=config.include,
            exclude=config.exclude,
        )

    @property
    def _crawls(self) -> bool:
        return self.config.mode == "crawl" and self.config.max_depth > 0

    def roots(self) -> Sequence[ItemRef]:
        """The start URL and, in a crawl, the in-scope pages its sitemap lists (depth 1)."""
        start = ItemRef(self.config.url, 0)
        if not self._crawls or not self.config.use_sitemap:
            return [start]
        try:
            self.fetcher.client.guard.check(self.config.url)
        except UnsafeUrlError:
            return [start]  # its visit fails with the reason
        sitemaps = list(self._robots.rules_for(self.config.url).sitemaps)
        if not sitemaps:
            sitemaps = [f"{origin_of(self.config.url)}/sitemap.xml"]
        entries = read_sitemaps(self.fetcher, sitemaps, max_urls=self.config.max_pages)
        items = [start]
        for entry in entries:
            if entry.url != start.key and self._scope.admits(entry.url):
                hints = {"lastmod": entry.lastmod} if entry.lastmod else {}
                items.append(ItemRef(entry.url, 1, hints))
        return items[: self.config.max_pages]

    def visit(self, item: ItemRef, previous: Revision | None) -> Visit:
        """Visit one URL (see the module docstring for the outcomes).

        Raises:
            UpstreamError: A timeout, 5xx or 429 (retryable).
        """
        try:
            self.fetcher.client.guard.check(item.key)
        except UnsafeUrlError as error:
            return _failed(str(error), "url_forbidden")
        if not self._robots.allows(item.key):
            return _failed(f"robots.txt disallows {item.key}", "robots_disallowed")
        wants_links = self._crawls and item.depth < self.config.max_depth
        try:
            result = self.fetcher.fetch(item.key, _conditional(previous, wants_links))
        except UnsafeUrlError as error:
            return _failed(str(error), "url_forbidden")
        except LimitExceededError as error:
            return _failed(str(error), "too_large")
        except PermanentError as error:
            return _failed(str(error), error.code)
        if result.gone:
            return Visit(Outcome.GONE, error=f"{result.url} answered {result.status}")
        if result.not_modified:
            return Visit(Outcome.UNCHANGED)
        return self._content(item, result, previous, wants_links)

    def _content(
        self, item: ItemRef, result: FetchResult, previous: Revision | None, wants_links: bool
    ) -> Visit:
        filename = filename_for(result.url, None)
        try:
            detection = sniff(result.body, filename)
        except PermanentError as error:
            return Visit(Outcome.SKIPPED, error=str(error), error_code=error.code)
        kind = _KINDS.get(detection.content_type)
        if kind is None:
            return Visit(
                Outcome.SKIPPED,
                error=f"{result.url} is {detection.content_type}, which a web source skips",
                error_code="unsupported_type",
            )
        children: list[ItemRef] = []
        if kind == "html" and wants_links and detection.text is not None:
            children = self._children(item, detection.text, result.url)
        version = f"{kind}:{hashlib.sha256(result.body).hexdigest()}"
        if previous is not None and previous.version == version:
            return Visit(Outcome.UNCHANGED, children=tuple(children))
        document = FetchedDocument(
            content=result.body,
            filename=filename_for(result.url, kind),
            content_type=result.content_type,
            origin_url=result.url,
            revision=Revision(
                etag=result.etag, last_modified=result.last_modified, version=version
            ),
        )
        return Visit(Outcome.FETCHED, document=document, children=tuple(children))

    def _children(self, item: ItemRef, html: str, page_url: str) -> list[ItemRef]:
        found = []
        for url in extract_links(html, page_url):
            if url != item.key and self._scope.admits(url):
                found.append(ItemRef(url, item.depth + 1))
                if len(found) >= self.config.max_pages:
                    break
        return found


def _conditional(previous: Revision | None, wants_links: bool) -> Revision | None:
    """The revision to make the request conditional on, if a 304 would do."""
    if previous is None or previous.version is None:
        return None  # no digest to compare: fetch in full
    if wants_links and previous.version.startswith("html:"):
        return None  # an unchanged page must still name its links: read them
    return previous


def _failed(reason: str, code: str) -> Visit:
    return Visit(Outcome.FAILED, error=reason, error_code=code)


def filename_for(url: str, kind: str | None) -> str:
    """A document file name from a URL's last path segment (or its host).

    Args:
        url: The URL the content came from.
        kind: The detected kind (``html``, ``pdf``, ...): its suffix is added when the
            name lacks it, so ``/about`` becomes ``about.html``.
    """
    parts = urlsplit(url)
    name = unquote(posixpath.basename(parts.path.rstrip("/"))) or (parts.hostname or "page")
    name = name.replace("/", "_").replace("\\", "_")[:200]
    suffixes = _SUFFIXES.get(kind or "", ())
    if suffixes and not name.lower().endswith(suffixes):
        name += suffixes[0]
    return name
