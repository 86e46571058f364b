"""Fetching one web page or file for a source, safely.

:class:`PageFetcher` sends a GET through :class:`~shared.net.client.SafeHttpClient`
(every URL checked by the SSRF guard, the connection pinned to the checked address)
and adds what a crawler needs on top:

* conditional requests: ``If-None-Match`` / ``If-Modified-Since`` from the revision the
  last sync stored, so an unchanged resource answers ``304`` with no body;
* redirects followed by hand: each ``Location`` is resolved against the current URL and
  checked by the guard again before any connection, at most :data:`MAX_REDIRECTS` hops,
  and a loop is an error;
* limits: the body is streamed and refused once past ``max_bytes`` (never a truncated
  document), and all hops together must finish within ``timeout_s``;
* ``Accept-Encoding: identity``; a server that compresses anyway has its gzip or
  deflate body decoded with the same size limit applied to the decoded bytes.

The content type is judged from the bytes by the parser's own detection; the declared
``Content-Type`` is kept only as a hint.

Failures are typed: :class:`~shared.errors.UnsafeUrlError` for a refused URL (at any
hop, before connecting), :class:`~shared.errors.LimitExceededError` (``too_large``),
:class:`~shared.errors.PermanentError` with ``http_<status>``, ``redirect_loop``,
``too_many_redirects`` or ``unsupported_encoding``, and a retryable
:class:`~shared.errors.UpstreamError` for timeouts, 5xx and 429.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from urllib.parse import urldefrag, urljoin

from shared.config import Settings
from shared.errors import LimitExceededError, PermanentError, UpstreamError
from shared.net.client import HttpResponse, SafeHttpClient
from shared.sources.connector import Revision
from shared.sources.web.links import normalize_url

#: The most redirects one fetch follows.
MAX_REDIRECTS = 5
#: Sent with every request, so site operators can tell (and address, in robots.txt) us.
USER_AGENT = "Ragline/1.0 (document indexer; robots.txt token: Ragline)"
#: The product token robots.txt groups are matched against.
ROBOTS_AGENT = "Ragline"

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_GONE = frozenset({404, 410})
_RETRYABLE = frozenset({408, 425, 429})


@dataclass(frozen=True)
class FetchResult:
    """What a fetch came to.

    Attributes:
        url: The URL that answered, after redirects.
        status: 200 (content), 304 (not modified) or 404/410 (gone).
        body: The decoded body (empty unless ``status`` is 200).
        content_type: The declared ``Content-Type``, a hint only.
        etag: The ``ETag`` sent with the answer, if any.
        last_modified: The ``Last-Modified`` sent with the answer, if any.
    """

    url: str
    status: int
    body: bytes = b""
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        """True when the server said the stored revision is current (304)."""
        return self.status == 304

    @property
    def gone(self) -> bool:
        """True when the resource no longer exists (404 or 410)."""
        return self.status in _GONE


class PageFetcher:
    """GETs user-given URLs through the SSRF-safe client, with a crawler's rules.

    Args:
        client: The guarded client (``runtime.outbound``).
        max_bytes: The largest body accepted (after decompression).
        timeout_s: Seconds one fetch may take, every redirect hop included.
        user_agent: The ``User-Agent`` header.
    """

    def __init__(
        self,
        client: SafeHttpClient,
        *,
        max_bytes: int = 25 * 1024 * 1024,
        timeout_s: float = 60.0,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.client = client
        self.max_bytes = max_bytes
        self._timeout_s = timeout_s
        self._user_agent = user_agent

    @classmethod
    def from_settings(cls, client: SafeHttpClient, settings: Settings) -> PageFetcher:
        """A fetcher with the limits of ``settings`` (``crawl_max_bytes``, ``crawl_timeout_s``)."""
        return cls(client, max_bytes=settings.crawl_max_bytes, timeout_s=settings.crawl_timeout_s)

    def fetch(
        self, url: str, previous: Revision | None = None, *, max_bytes: int | None = None
    ) -> FetchResult:
        """GET ``url``, conditionally on ``previous``, following redirects by hand.

        Args:
            url: An http(s) URL.
            previous: The stored revision: its ETag and Last-Modified make the request
                conditional.
            max_bytes: A smaller body limit for this fetch (robots.txt, sitemaps).

        Returns:
            The final answer: content, not modified, or gone.

        Raises:
            UnsafeUrlError: The URL, or a redirect's target, is refused (nothing was
                connected to for it).
            LimitExceededError: The body is larger than the limit (``too_large``).
            PermanentError: Any other permanent failure, with its code.
            UpstreamError: A timeout, 5xx or 429 (retryable).
        """
        limit = self.max_bytes if max_bytes is None else min(max_bytes, self.max_bytes)
        deadline = time.monotonic() + self._timeout_s
        headers = self._headers(previous)
        current = _canonical(url)
        seen = {current}
        for _hop in range(MAX_REDIRECTS + 1):
            destination = self.client.guard.check(current)
            response = self.client.request(
                "GET",
                destination,
                None,
                headers,
                max_body_bytes=limit,
                refuse_larger=True,
                deadline=deadline,
            )
            if response.status not in _REDIRECTS:
                return _result(current, response, limit)
            current = _next_hop(current, response)
            if current in seen:
                raise PermanentError(f"{url} redirects in a loop", code="redirect_loop")
            seen.add(current)
        raise PermanentError(
            f"{url} redirects more than {MAX_REDIRECTS} times", code="too_many_redirects"
        )

    def _headers(self, previous: Revision | None) -> dict[str, str]:
        headers = {
            "User-Agent": self._user_agent,
            "Accept": "text/html,application/xhtml+xml,application/pdf,*/*;q=0.8",
            "Accept-Encoding": "identity",
        }
        if previous is not None and previous.etag:
            headers["If-None-Match"] = previous.etag
        if previous is not None and previous.last_modified:
            headers["If-Modified-Since"] = previous.last_modified
        return headers


def _next_hop(current: str, response: HttpResponse) -> str:
    location = response.headers.get("location", "").strip()
    if not location:
        raise PermanentError(
            f"{current} answered {response.status} without a Location",
            code=f"http_{response.status}",
        )
    return _canonical(urljoin(current, location))


def _canonical(url: str) -> str:
    """The URL normalized (escaped, no fragment), or as given if it is not http(s).

    A URL that does not normalize is left for the guard, which refuses it with its reason.
    """
    normalized = normalize_url(url)
    if normalized is not None:
        return normalized
    target, _ = urldefrag(url)
    return target


def _result(url: str, response: HttpResponse, limit: int) -> FetchResult:
    status = response.status
    if status >= 500 or status in _RETRYABLE:
        raise UpstreamError(f"{url} answered {status}", code=f"http_{status}", retryable=True)
    if status in _GONE:
        return FetchResult(url=url, status=status)
    if status == 304:
        return FetchResult(
            url=url,
            status=status,
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
        )
    if status != 200:
        raise PermanentError(f"{url} answered {status}", code=f"http_{status}")
    return FetchResult(
        url=url,
        status=status,
        body=decode_body(response.body, response.headers.get("content-encoding"), limit),
        content_type=response.headers.get("content-type"),
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
    )


def decode_body(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo a ``Content-Encoding``, refusing output larger than ``limit`` bytes.

    Args:
        body: The bytes as received.
        encoding: The ``Content-Encoding`` header (None or ``identity``: as is).
        limit: The most decoded bytes accepted (a small gzip may expand enormously).

    Returns:
        The decoded bytes.

    Raises:
        LimitExceededError: The decoded body is larger than ``limit`` (``too_large``).
        PermanentError: An encoding other than gzip or deflate, or a corrupt stream.
    """
    kind = (encoding or "identity").strip().lower()
    if kind == "identity":
        return body
    if kind in ("gzip", "x-gzip"):
        return inflate(body, limit, wbits=16 + zlib.MAX_WBITS)
    if kind == "deflate":
        return inflate(body, limit, wbits=zlib.MAX_WBITS)
    raise PermanentError(
        f"the server sent an unsupported Content-Encoding {kind!r}", code="unsupported_encoding"
    )


def inflate(data: bytes, limit: int, *, wbits: int) -> bytes:
    """Decompress zlib/gzip ``data`` (``wbits`` as for :func:`zlib.decompressobj`), capped.

    Raises:
        LimitExceededError: The output would pass ``limit`` bytes (``too_large``).
        PermanentError: The stream is corrupt (``corrupt_encoding``).
    """
    decompressor = zlib.decompressobj(wbits)
    try:
        output = decompressor.decompress(data, limit + 1)
    except zlib.error as error:
        raise PermanentError(
            f"the compressed body is corrupt: {error}", code="corrupt_encoding"
        ) from error
    if len(output) > limit or decompressor.unconsumed_tail:
        raise LimitExceededError(
            f"the decompressed body is larger than the limit of {limit} bytes", code="too_large"
        )
    return output
