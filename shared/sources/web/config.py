"""The configuration of a ``url`` source: ``{"type": "url", "config": {...}}``.

``{"url": "https://example.com/report.html"}`` alone fetches that one page (and
re-syncs it). ``"mode": "crawl"`` follows links from it: within ``max_depth`` hops,
``max_pages`` pages in all (the run's item cap, :attr:`UrlSourceConfig.max_items`),
on the start URL's origin (plus ``allow_origins``, or any origin with
``same_origin: false``), through the ``include`` and ``exclude`` globs on the URL
path, and starting also from the pages the site's sitemap lists (``use_sitemap``).

The model checks the shape only; whether the URL may be fetched at all (a public
address) is the guard's call, when the source is created
(:func:`shared.sources.web.connector.check_source_url`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.sources.web.links import normalize_url

_GLOB_LIMIT = 50


class UrlSourceConfig(BaseModel):
    """A web source: one page, or a crawl from it.

    Attributes:
        url: The page (http or https), normalized.
        mode: ``single`` fetches only ``url``; ``crawl`` follows its links.
        max_depth: Link hops followed from ``url`` in a crawl (``url`` is depth 0).
        max_pages: The most pages (items) a crawl visits.
        include: Globs on the URL path; when given, a linked page must match one.
        exclude: Globs on the URL path; a linked page matching any is not followed.
        same_origin: Follow links only to ``url``'s origin and ``allow_origins``.
        allow_origins: Other origins to follow links to (``https://docs.example.com``).
        use_sitemap: In a crawl, also start from the pages the site's sitemap lists.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(max_length=2048)
    mode: Literal["single", "crawl"] = "single"
    max_depth: int = Field(default=2, ge=0, le=10)
    max_pages: int = Field(default=100, ge=1, le=10_000)
    include: tuple[str, ...] = Field(default=(), max_length=_GLOB_LIMIT)
    exclude: tuple[str, ...] = Field(default=(), max_length=_GLOB_LIMIT)
    same_origin: bool = True
    allow_origins: tuple[str, ...] = Field(default=(), max_length=_GLOB_LIMIT)
    use_sitemap: bool = True

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        normalized = normalize_url(value)
        if normalized is None:
            raise ValueError("must be an http or https URL with a host and no credentials")
        return normalized

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if normalize_url(origin) is None:
                raise ValueError(f"{origin!r} is not an http or https origin")
        return value

    @field_validator("include", "exclude")
    @classmethod
    def _globs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for glob in value:
            if not glob.startswith("/") or len(glob) > 500:
                raise ValueError(f"{glob!r} must be a path glob starting with / (500 chars max)")
        return value

    @property
    def max_items(self) -> int:
        """The run's cap on items: one for a single page, ``max_pages`` for a crawl."""
        return 1 if self.mode == "single" else self.max_pages
