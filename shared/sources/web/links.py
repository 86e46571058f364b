"""Links: reading them from HTML, normalizing URLs, and deciding which to follow.

A URL is an item's key (:class:`~shared.sources.connector.ItemRef`), so two spellings
of one page must normalize to one key: scheme and host lowercased (IDN hosts to their
ASCII form), the default port dropped, the fragment removed, percent-escapes of
unreserved characters decoded and the others uppercased, an empty path made ``/``.

Links are read with selectolax (the parser's HTML library): every ``<a href>``,
resolved against ``<base href>`` when the page has one. Skipped: ``rel="nofollow"``
links (the author asked crawlers not to follow them), ``mailto:``, ``javascript:``,
``tel:``, ``data:`` and other non-http(s) links, and links to the page itself.

The scope (:class:`CrawlScope`) admits a URL when it is on an allowed origin (the start
URL's origin, plus ``allow_origins``), its path matches an ``include`` glob (when any
are given) and no ``exclude`` glob, and its path does not end in a type a crawl never
ingests (images, media, archives, executables, styles and scripts).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from urllib.parse import urljoin, urlsplit, urlunsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# File types a crawl never ingests: following such a link would only download bytes
# the parser refuses (or cannot use).
_SKIPPED_SUFFIXES = (
    ".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".ico", ".bmp", ".tif", ".tiff",
    ".avif", ".mp3", ".mp4", ".m4a", ".wav", ".ogg", ".webm", ".mov", ".avi", ".mkv",
    ".zip", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".tar", ".exe", ".dmg", ".msi",
    ".apk", ".iso", ".bin", ".css", ".js", ".mjs", ".json", ".woff", ".woff2", ".ttf",
    ".eot", ".xls", ".xlsx", ".ppt", ".pptx", ".doc",
)  # fmt: skip


def normalize_url(url: str) -> str | None:
    """The canonical form of an http(s) URL, or None if it is not one.

    Args:
        url: An absolute URL.

    Returns:
        The normalized URL (see the module docstring), or None for another scheme, a
        URL without a host, or one that does not parse.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if scheme not in _DEFAULT_PORTS or not host or parts.username or parts.password:
        return None
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = _normalize_escapes(parts.path) or "/"
    return urlunsplit((scheme, netloc, path, _normalize_escapes(parts.query), ""))


def _normalize_escapes(text: str) -> str:
    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else f"%{match.group(1).upper()}"

    # Characters that must be escaped (spaces, non-ASCII) are escaped once here, so a
    # raw and an escaped spelling of the same path meet.
    escaped = "".join(c if 32 < ord(c) < 127 else _escape(c) for c in text)
    return _ESCAPE.sub(fix, escaped)


def _escape(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a normalized URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def extract_links(html: str, page_url: str) -> list[str]:
    """The normalized http(s) URLs a page links to, in document order, once each.

    Args:
        html: The page's markup.
        page_url: The URL the page was fetched from (after redirects).

    Returns:
        Absolute, normalized URLs; ``nofollow`` links, other schemes and the page
        itself left out.
    """
    # Imported here: only a sync visit reads HTML; configs are validated without it.
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    base = page_url
    base_node = tree.css_first("base[href]")
    if base_node is not None:
        base = urljoin(page_url, (base_node.attributes.get("href") or "").strip())
    own = normalize_url(page_url)
    found: dict[str, None] = {}
    for node in tree.css("a[href]"):
        rel = (node.attributes.get("rel") or "").lower().split()
        href = (node.attributes.get("href") or "").strip()
        if "nofollow" in rel or not href or href.startswith("#"):
            continue
        url = normalize_url(urljoin(base, href))
        if url is not None and url != own:
            found.setdefault(url)
    return list(found)


class CrawlScope:
    """Which URLs a crawl follows.

    Args:
        start_url: The normalized start URL; its origin is always allowed.
        allow_origins: Other origins to follow links to (``https://docs.example.com``);
            with ``same_origin=False`` every origin is allowed.
        same_origin: Follow links only to the allowed origins.
        include: Globs on the URL path (``/docs/*``); when given, a path must match one.
        exclude: Globs on the URL path; a path matching any is not followed.
    """

    def __init__(
        self,
        start_url: str,
        *,
        allow_origins: Iterable[str] = (),
        same_origin: bool = True,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
    ) -> None:
        origins = {origin_of(start_url)}
        for origin in allow_origins:
            normalized = normalize_url(origin)
            if normalized is not None:
                origins.add(origin_of(normalized))
        self._origins = frozenset(origins)
        self._same_origin = same_origin
        self._include = tuple(include)
        self._exclude = tuple(exclude)

    def admits(self, url: str) -> bool:
        """Whether a normalized URL is in scope."""
        if self._same_origin and origin_of(url) not in self._origins:
            return False
        path = urlsplit(url).path
        if path.lower().endswith(_SKIPPED_SUFFIXES):
            return False
        if self._include and not any(fnmatchcase(path, glob) for glob in self._include):
            return False
        return not any(fnmatchcase(path, glob) for glob in self._exclude)
