"""robots.txt: which URLs of an origin the crawler may fetch, and its sitemaps.

The file is fetched through the same safe fetcher as every page (the guard checks it,
redirects are followed by hand) and parsed with the standard library's
:class:`urllib.robotparser.RobotFileParser`, fed the text we fetched: the parser is
never asked to fetch anything itself, which would bypass the guard.

Per RFC 9309: a robots.txt that does not exist or is not available (4xx, or refused by
the guard after a redirect) allows everything; one the server fails to serve (5xx, a
timeout, an unreachable host) disallows everything for the run, since the site may be
overloaded or its rules unknown; one larger than :data:`MAX_ROBOTS_BYTES` is treated
the same way. The rules applied are those of our product token ``Ragline`` (or ``*``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.robotparser import RobotFileParser

from shared.errors import LimitExceededError, PermanentError, UnsafeUrlError, UpstreamError
from shared.sources.web.fetch import ROBOTS_AGENT, PageFetcher
from shared.sources.web.links import normalize_url, origin_of

#: The largest robots.txt read (RFC 9309 asks crawlers to read at least 500 KiB).
MAX_ROBOTS_BYTES = 512 * 1024

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RobotsRules:
    """An origin's robots.txt, parsed.

    Attributes:
        origin: ``scheme://host[:port]``.
        parser: The rules (None when everything is allowed: no robots.txt).
        disallow_all: True when the file could not be read (a server error).
        sitemaps: The ``Sitemap:`` URLs it lists, normalized.
    """

    origin: str
    parser: RobotFileParser | None = None
    disallow_all: bool = False
    sitemaps: tuple[str, ...] = ()

    def allows(self, url: str) -> bool:
        """Whether our user agent may fetch ``url``."""
        if self.disallow_all:
            return False
        if self.parser is None:
            return True
        return self.parser.can_fetch(ROBOTS_AGENT, url)


class RobotsCache:
    """Fetches each origin's robots.txt once and answers from it.

    Args:
        fetcher: The safe fetcher robots.txt is read with.
    """

    def __init__(self, fetcher: PageFetcher) -> None:
        self._fetcher = fetcher
        self._rules: dict[str, RobotsRules] = {}

    def rules_for(self, url: str) -> RobotsRules:
        """The rules of ``url``'s origin (fetched on first use)."""
        origin = origin_of(url)
        rules = self._rules.get(origin)
        if rules is None:
            rules = self._rules[origin] = self._load(origin)
        return rules

    def allows(self, url: str) -> bool:
        """Whether robots.txt lets our user agent fetch ``url``."""
        return self.rules_for(url).allows(url)

    def _load(self, origin: str) -> RobotsRules:
        url = f"{origin}/robots.txt"
        try:
            result = self._fetcher.fetch(url, max_bytes=MAX_ROBOTS_BYTES)
        except (UpstreamError, LimitExceededError) as error:
            log.info("robots.txt unreadable, disallowing all: %s", url, extra={"error": str(error)})
            return RobotsRules(origin, disallow_all=True)
        except (PermanentError, UnsafeUrlError) as error:
            log.info("robots.txt unavailable, allowing all: %s", url, extra={"error": str(error)})
            return RobotsRules(origin)
        if result.status != 200:
            return RobotsRules(origin)
        parser = RobotFileParser(url)
        lines = result.body.decode("utf-8", errors="replace").splitlines()
        parser.parse(lines)
        sitemaps = tuple(
            normalized
            for normalized in (normalize_url(sitemap) for sitemap in parser.site_maps() or ())
            if normalized is not None
        )
        return RobotsRules(origin, parser=parser, sitemaps=sitemaps)
