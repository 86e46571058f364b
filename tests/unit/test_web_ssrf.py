"""Web sources refuse every non-public destination before any connection is made.

The resolver answers from a fixed table and the connector records each connection
attempt: a refused URL must leave it untouched. The redirect cases connect once, to the
allowed host, through an in-memory socket pair that plays the server: nothing here
opens a real connection.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from shared.errors import UnsafeUrlError
from shared.net.client import SafeHttpClient
from shared.net.guard import UrlGuard
from shared.sources.connector import ItemRef, Outcome
from shared.sources.web.config import UrlSourceConfig
from shared.sources.web.connector import UrlConnector, check_source_url
from shared.sources.web.fetch import PageFetcher
from tests.support.fake_dns import FakeDns

PUBLIC = "93.184.216.34"

DNS: dict[str, list[str]] = {
    "example.com": [PUBLIC],
    "public.example.com": [PUBLIC],
    "rebind.example.com": [PUBLIC, "10.0.0.7"],  # public first, then private
    "private.example.com": ["192.168.1.20"],
    "metadata-alias.example.com": ["169.254.169.254"],
    "loopback.example.com": ["127.0.0.1"],
    "loop6.example.com": ["::1"],
    "mapped.example.com": ["::ffff:127.0.0.1"],
    "cgnat.example.com": ["100.64.3.4"],
}


class CannedServer:
    """A connector whose every connection is a socket pair preloaded with one answer.

    Records each ``(address, port)`` connected to; with no answers left it refuses.
    """

    def __init__(self, *answers: bytes) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []
        self._server_ends: list[socket.socket] = []

    def __call__(self, address: str, port: int, timeout: float) -> socket.socket:
        self.calls.append((address, port))
        if not self.answers:
            raise ConnectionRefusedError("the test connector connects to nothing")
        client, server = socket.socketpair()
        server.sendall(self.answers.pop(0))
        self._server_ends.append(server)
        client.settimeout(timeout)
        return client

    def received(self) -> bytes:
        """What the client sent on the last connection."""
        end = self._server_ends[-1]
        end.settimeout(1)
        return end.recv(65536)

    def close(self) -> None:
        for end in self._server_ends:
            end.close()


def answer(status: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.fixture
def server() -> Iterator[CannedServer]:
    canned = CannedServer()
    yield canned
    canned.close()


def fetcher_for(connector: CannedServer) -> PageFetcher:
    return PageFetcher(SafeHttpClient(UrlGuard(FakeDns(DNS)), connector), timeout_s=5)


FORBIDDEN = [
    "http://127.0.0.1/",
    "http://0x7f.1/",  # hex and short form of 127.0.0.1
    "http://2130706433/",  # decimal
    "http://017700000001/",  # octal
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped IPv6
    "http://[::ffff:7f00:1]/",  # the same, in hex
    "http://[::ffff:169.254.169.254]/",
    "http://[::]/",
    "http://localhost/",
    "http://localhost./",  # the trailing dot names the same host
    "http://LocalHost:8080/",
    "http://www.localhost/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata.google.internal./",
    "http://metadata/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",  # CGNAT
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://[fd00::1]/",  # unique-local
    "http://[fe80::1]/",  # link-local
    "http://224.0.0.1/",  # multicast
    "http://[ff02::1]/",
    "http://0.0.0.0/",  # unspecified
    "http://0/",
    "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
    "ftp://example.com/",
    "file:///etc/passwd",
    "gopher://example.com/",
    "http://user:secret@example.com/",
    "http://rebind.example.com/",  # a public address first, a private one second
    "http://private.example.com/",
    "http://metadata-alias.example.com/",
    "http://loopback.example.com/",
    "http://loop6.example.com/",
    "http://mapped.example.com/",
    "http://cgnat.example.com/",
    "http://nowhere.example.com/",  # resolves to nothing
    "http://printer.local/",
]


def test_the_table_is_large_enough() -> None:
    assert len(FORBIDDEN) >= 25


@pytest.mark.parametrize("url", FORBIDDEN)
def test_the_fetcher_refuses_before_any_connection(url: str, server: CannedServer) -> None:
    fetcher = fetcher_for(server)

    with pytest.raises(UnsafeUrlError):
        fetcher.fetch(url)

    assert server.calls == [], "the connector must never be called"


@pytest.mark.parametrize("url", FORBIDDEN)
def test_a_crawl_visit_of_a_refused_url_fails_with_its_reason(
    url: str, server: CannedServer
) -> None:
    # The run may hold such a URL from a link or a sitemap; the config model is bypassed.
    config = UrlSourceConfig.model_construct(url="https://example.com/", mode="crawl")
    connector = UrlConnector(config, fetcher_for(server))

    visit = connector.visit(ItemRef(url, 1), None)

    assert visit.outcome is Outcome.FAILED
    assert visit.error_code == "url_forbidden"
    assert visit.error
    assert server.calls == [], "refused before any connection, robots.txt included"


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/",
        "http://localhost./",
        "http://[::ffff:7f00:1]/",
        "http://rebind.example.com/",
        "http://2130706433/",
    ],
)
def test_a_source_with_a_refused_url_is_refused_when_created(url: str) -> None:
    config = UrlSourceConfig(url=url)

    with pytest.raises(UnsafeUrlError) as refused:
        check_source_url(config, UrlGuard(FakeDns(DNS)))

    assert refused.value.code == "unsafe_url"  # the HTTP layer's 400


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "http:///x"])
def test_the_config_accepts_only_http_urls(url: str) -> None:
    with pytest.raises(ValueError, match="http or https"):
        UrlSourceConfig(url=url)


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/computeMetadata/v1/",
        "http://metadata.google.internal/",
        "http://127.0.0.1:8080/admin",
        "http://[::1]/",
        "http://rebind.example.com/",
        "file:///etc/passwd",
    ],
)
def test_a_redirect_to_a_forbidden_host_is_refused_after_one_connection(
    location: str, server: CannedServer
) -> None:
    server.answers.append(answer("302 Found", {"Location": location}))
    fetcher = fetcher_for(server)

    with pytest.raises(UnsafeUrlError):
        fetcher.fetch("http://public.example.com/start")

    assert server.calls == [(PUBLIC, 80)], "only the allowed host was connected to"


def test_a_crawl_visit_redirected_to_the_metadata_server_fails(server: CannedServer) -> None:
    server.answers += [
        answer("404 Not Found"),  # robots.txt
        answer("301 Moved Permanently", {"Location": "/../..//169.254.169.254/"}),
        answer("302 Found", {"Location": "http://169.254.169.254/computeMetadata/v1/"}),
    ]
    config = UrlSourceConfig(url="http://public.example.com/", mode="crawl")
    connector = UrlConnector(config, fetcher_for(server))

    visit = connector.visit(ItemRef(config.url), None)

    assert visit.outcome is Outcome.FAILED
    assert visit.error_code == "url_forbidden"
    assert "169.254.169.254" in (visit.error or "")
    assert server.calls == [(PUBLIC, 80)] * 3, "robots.txt and two hops on the public host"


def test_a_public_url_connects_to_the_checked_address_with_its_host_name(
    server: CannedServer,
) -> None:
    server.answers.append(answer("200 OK", {"Content-Type": "text/plain"}, b"hello"))
    dns = FakeDns(DNS)
    fetcher = PageFetcher(SafeHttpClient(UrlGuard(dns), server))

    result = fetcher.fetch("http://public.example.com:8080/a")

    assert result.body == b"hello"
    assert server.calls == [(PUBLIC, 8080)]
    assert dns.asked == ["public.example.com"], "resolved once"
    request = server.received().decode()
    assert request.startswith("GET /a HTTP/1.1\r\n")
    assert "Host: public.example.com:8080\r\n" in request, "the name, not the address"
    assert "User-Agent: Ragline/" in request
    assert "Accept-Encoding: identity\r\n" in request
