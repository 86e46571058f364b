"""URL normalization, link extraction, crawl scope and the url source's configuration."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pydantic
import pytest

from shared.config import Settings
from shared.errors import UpstreamError
from shared.net.client import SafeHttpClient
from shared.net.guard import UrlGuard
from shared.sources.web.config import UrlSourceConfig
from shared.sources.web.connector import UrlConnector, filename_for, url_connector
from shared.sources.web.fetch import PageFetcher
from shared.sources.web.links import CrawlScope, extract_links, normalize_url
from tests.support.outbound import loopback_client


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("HTTP://Example.COM", "http://example.com/"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a?b=1#frag", "https://example.com/a?b=1"),
        ("https://example.com:8443/", "https://example.com:8443/"),
        ("http://example.com/%7euser/%2fx%2F", "http://example.com/~user/%2Fx%2F"),
        ("http://example.com/a b/ü", "http://example.com/a%20b/%C3%BC"),
        ("http://example.com/a%20b/%c3%bc", "http://example.com/a%20b/%C3%BC"),
        ("http://[2001:DB8::1]:8080/x", "http://[2001:db8::1]:8080/x"),
        ("http://bücher.example/", "http://xn--bcher-kva.example/"),
    ],
)
def test_urls_normalize_to_one_key(url: str, normalized: str) -> None:
    assert normalize_url(url) == normalized


@pytest.mark.parametrize(
    "url", ["mailto:a@example.com", "javascript:alert(1)", "ftp://example.com/", "http://", "x"]
)
def test_other_urls_are_not_links(url: str) -> None:
    assert normalize_url(url) is None


def test_links_resolve_against_base_and_skip_what_is_not_followed() -> None:
    html = """<html><head><base href="https://example.com/docs/"></head><body>
      <a href="guide.html">guide</a>
      <a href="/about#team">about</a>
      <a href="/about">about again</a>
      <a href="#top">top</a>
      <a href="mailto:x@example.com">mail</a>
      <a href="javascript:void(0)">js</a>
      <a rel="nofollow" href="/login">login</a>
      <a href="https://example.com/docs/index.html">self</a>
      <a href="HTTPS://Other.Example.com:443/x">other</a>
    </body></html>"""

    links = extract_links(html, "https://example.com/docs/index.html")

    assert links == [
        "https://example.com/docs/guide.html",
        "https://example.com/about",
        "https://other.example.com/x",
    ]


def test_the_scope_is_the_origin_the_patterns_and_the_file_types() -> None:
    scope = CrawlScope(
        "https://example.com/",
        allow_origins=["https://docs.example.com"],
        include=["/docs/*", "/files/*.pdf"],
        exclude=["/docs/private/*"],
    )

    assert scope.admits("https://example.com/docs/a")
    assert scope.admits("https://docs.example.com/docs/a")
    assert scope.admits("https://example.com/files/report.pdf")
    assert not scope.admits("http://example.com/docs/a"), "another scheme is another origin"
    assert not scope.admits("https://example.com:8443/docs/a")
    assert not scope.admits("https://evil.example.com/docs/a")
    assert not scope.admits("https://example.com/blog/a")
    assert not scope.admits("https://example.com/docs/private/a")
    assert not scope.admits("https://example.com/docs/photo.JPG")
    assert not scope.admits("https://example.com/docs/archive.zip")
    anywhere = CrawlScope("https://example.com/", same_origin=False)
    assert anywhere.admits("https://elsewhere.example.org/page")


def test_the_config_has_defaults_bounds_and_no_extra_keys() -> None:
    single = UrlSourceConfig(url="HTTPS://Example.com")
    assert (single.url, single.mode, single.max_items) == ("https://example.com/", "single", 1)
    crawl = UrlSourceConfig.model_validate(
        {"url": "https://example.com/", "mode": "crawl", "max_pages": 50}
    )
    assert crawl.max_items == 50 and crawl.use_sitemap and crawl.same_origin

    for bad in (
        {"url": "https://example.com/", "max_depth": 11},
        {"url": "https://example.com/", "max_pages": 0},
        {"url": "https://example.com/", "mode": "mirror"},
        {"url": "https://example.com/", "include": ["docs/*"]},
        {"url": "https://example.com/", "allow_origins": ["ftp://example.com"]},
        {"url": "https://example.com/", "follow_everything": True},
    ):
        with pytest.raises(pydantic.ValidationError):
            UrlSourceConfig.model_validate(bad)


@pytest.mark.parametrize(
    ("url", "kind", "name"),
    [
        ("https://example.com/", "html", "example.com.html"),
        ("https://example.com/docs/guide/", "html", "guide.html"),
        ("https://example.com/a/Report%20Q3.pdf", "pdf", "Report Q3.pdf"),
        ("https://example.com/download?id=7", "docx", "download.docx"),
        ("https://example.com/notes.txt", "text", "notes.txt"),
    ],
)
def test_file_names_come_from_the_url(url: str, kind: str, name: str) -> None:
    assert filename_for(url, kind) == name


@pytest.fixture
def trickling_server() -> Iterator[int]:
    """Sends a 200-byte body one byte every 50 ms: each read is quick, the whole is not."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n")
                for _ in range(200):
                    if stop.wait(0.05):
                        return
                    conn.sendall(b"x")
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    listener.close()
    thread.join()


def test_a_fetch_that_outlives_its_time_cap_is_a_retryable_timeout(trickling_server: int) -> None:
    # No single read waits long: only the cap on the whole fetch can stop it.
    fetcher = PageFetcher(loopback_client(timeout_s=30), timeout_s=0.5)

    with pytest.raises(UpstreamError) as raised:
        fetcher.fetch(f"http://127.0.0.1:{trickling_server}/slow")

    assert raised.value.retryable
    assert raised.value.code == "timeout"


def test_a_connector_is_built_from_a_stored_config_and_the_settings() -> None:
    settings = Settings.model_validate({"crawl_max_bytes": 12345})

    connector = url_connector({"url": "https://example.com/a", "mode": "crawl"}, client(), settings)

    assert connector.config.mode == "crawl"
    assert connector.fetcher.max_bytes == 12345
    assert connector.config.max_items == connector.config.max_pages
    assert [
        root.key
        for root in UrlConnector(
            UrlSourceConfig(url="https://example.com/a"), PageFetcher(client())
        ).roots()
    ] == ["https://example.com/a"]
    with pytest.raises(pydantic.ValidationError):
        url_connector({"url": "https://example.com/", "depth": 3}, client(), settings)


def client() -> SafeHttpClient:
    return SafeHttpClient(UrlGuard(lambda host, port: []))
