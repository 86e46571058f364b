"""Sitemaps: the page URLs (and their ``lastmod``) a site lists in ``sitemap.xml``.

A sitemap is untrusted XML, read with ``defusedxml`` (no DTDs, no entity expansion, no
external references). A ``.gz`` sitemap is decompressed with the size limit applied to
the decoded bytes. A sitemap index is followed to the sitemaps it lists, at most
:data:`MAX_INDEX_DEPTH` levels deep and :data:`MAX_SITEMAPS` files in all, and no more
than ``max_urls`` URLs are returned. A sitemap that cannot be fetched or read is
skipped: the crawl still starts from its start URL.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from shared.errors import PermanentError, UnsafeUrlError, UpstreamError
from shared.sources.web.fetch import PageFetcher, inflate
from shared.sources.web.links import normalize_url

#: The largest sitemap file read (the protocol's own limit is 50 MB uncompressed).
MAX_SITEMAP_BYTES = 50 * 1024 * 1024
#: How deep sitemap indexes are followed (an index of indexes is already unusual).
MAX_INDEX_DEPTH = 2
#: The most sitemap files read for one source.
MAX_SITEMAPS = 20

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SitemapEntry:
    """A page a sitemap lists.

    Attributes:
        url: The normalized page URL.
        lastmod: Its ``<lastmod>`` as written, if given.
    """

    url: str
    lastmod: str | None = None


def read_sitemaps(fetcher: PageFetcher, urls: list[str], *, max_urls: int) -> list[SitemapEntry]:
    """The pages listed by the sitemaps at ``urls`` (indexes followed), once each.

    Args:
        fetcher: The safe fetcher.
        urls: Sitemap URLs (from robots.txt, or the origin's ``/sitemap.xml``).
        max_urls: The most entries returned.

    Returns:
        Entries in the order found; unreadable sitemaps are skipped.
    """
    entries: dict[str, SitemapEntry] = {}
    pending = [(url, 0) for url in urls]
    visited: set[str] = set()
    while pending and len(visited) < MAX_SITEMAPS and len(entries) < max_urls:
        url, depth = pending.pop(0)
        if url in visited:
            continue
        visited.add(url)
        root = _fetch_xml(fetcher, url)
        if root is None:
            continue
        kind = _local(root.tag)
        if kind == "sitemapindex" and depth < MAX_INDEX_DEPTH:
            pending.extend((child, depth + 1) for child, _ in _locations(root, "sitemap"))
        elif kind == "urlset":
            for page, lastmod in _locations(root, "url"):
                entries.setdefault(page, SitemapEntry(page, lastmod))
                if len(entries) >= max_urls:
                    break
    return list(entries.values())


def parse_sitemap(data: bytes) -> Element:
    """Parse sitemap XML safely (gzip-compressed or not).

    Raises:
        PermanentError: Not well-formed, or using DTDs or entities (``bad_sitemap``).
        LimitExceededError: Decompressed, it is larger than :data:`MAX_SITEMAP_BYTES`.
    """
    if data.startswith(b"\x1f\x8b"):
        data = inflate(data, MAX_SITEMAP_BYTES, wbits=16 + zlib.MAX_WBITS)
    try:
        return fromstring(data, forbid_dtd=True)
    except (ParseError, DefusedXmlException) as error:
        raise PermanentError(
            f"the sitemap is not usable XML: {error}", code="bad_sitemap"
        ) from error


def _fetch_xml(fetcher: PageFetcher, url: str) -> Element | None:
    try:
        result = fetcher.fetch(url, max_bytes=MAX_SITEMAP_BYTES)
        if result.status != 200:
            return None
        return parse_sitemap(result.body)
    except (PermanentError, UnsafeUrlError, UpstreamError) as error:
        log.info("sitemap skipped: %s", url, extra={"error": str(error)})
        return None


def _locations(root: Element, entry: str) -> list[tuple[str, str | None]]:
    """``(normalized loc, lastmod)`` of each ``<url>`` or ``<sitemap>`` child."""
    found = []
    for child in root:
        if _local(child.tag) != entry:
            continue
        loc = lastmod = None
        for field in child:
            name = _local(field.tag)
            if name == "loc":
                loc = normalize_url(field.text or "")
            elif name == "lastmod":
                lastmod = (field.text or "").strip() or None
        if loc is not None:
            found.append((loc, lastmod))
    return found


def _local(tag: str) -> str:
    """A tag without its namespace (``{http://www.sitemaps.org/...}url`` -> ``url``)."""
    return tag.rsplit("}", 1)[-1]
