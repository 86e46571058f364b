"""The SSRF guard refuses every non-public destination before any connection is made."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from shared.errors import UnsafeUrlError, UpstreamError
from shared.net.client import SafeHttpClient, connect_tcp
from shared.net.guard import UrlGuard, parse_numeric_ipv4
from tests.support.fake_dns import FakeDns

PUBLIC = "93.184.216.34"

# What the fake DNS answers; a name not listed resolves to nothing.
DNS: dict[str, list[str]] = {
    "example.com": [PUBLIC],
    "v6.example.com": ["2606:2800:220:1:248:1893:25c8:1946"],
    "private.example.com": ["10.1.2.3"],
    "rebind.example.com": [PUBLIC, "192.168.1.10"],  # public first, then private
    "metadata-alias.example.com": ["169.254.169.254"],
    "loop6.example.com": ["::1"],
    "mapped.example.com": ["::ffff:10.0.0.1"],
    "cgnat.example.com": ["100.64.1.1"],
}


class RecordingConnector:
    """Records each connection attempt and makes none."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, address: str, port: int, timeout: float) -> socket.socket:
        self.calls.append((address, port))
        raise ConnectionRefusedError("the test connector connects to nothing")


FORBIDDEN = [
    "http://127.0.0.1/hook",
    "http://127.1/",
    "http://2130706433/",  # decimal 127.0.0.1
    "http://017700000001/",  # octal
    "http://0x7f000001/",  # hex
    "http://0x7f.0.0.1/",  # mixed
    "http://0177.0.0.01/",
    "http://0/",
    "http://0.0.0.0:8080/",
    "http://localhost/",
    "http://localhost./",
    "http://LOCALHOST:9000/",
    "http://api.localhost/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.0.1/",
    "http://169.254.169.254/computeMetadata/v1/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata.google.internal./",
    "http://metadata/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://192.0.2.1/",
    "http://[::1]/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:8.8.8.8]/",  # any mapped form: the IPv4 rules are not bypassed
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://[ff02::1]/",
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "http://private.example.com/",
    "http://rebind.example.com/",
    "http://metadata-alias.example.com/",
    "http://loop6.example.com/",
    "http://mapped.example.com/",
    "http://cgnat.example.com/",
    "http://unknown.example.com/",  # resolves to nothing
    "http://printer.local/",
    "http://db.internal/",
    "ftp://example.com/",
    "file:///etc/passwd",
    "gopher://example.com/",
    "http://user:pass@example.com/",
    "http://example.com:99999/",
    "http://08.0.0.1/",  # not a valid octal label
    "http:///nohost",
]


@pytest.mark.parametrize("url", FORBIDDEN)
def test_a_forbidden_url_is_refused_before_any_connection(url: str) -> None:
    connector = RecordingConnector()
    client = SafeHttpClient(UrlGuard(FakeDns(DNS)), connector)

    with pytest.raises(UnsafeUrlError) as refused:
        client.post(url, b"{}", {"Content-Type": "application/json"})

    assert refused.value.code == "unsafe_url"
    assert connector.calls == [], "the connector must never be called"


def test_the_table_is_large_enough() -> None:
    assert len(FORBIDDEN) >= 25


def test_numeric_hosts_are_read_as_the_c_resolver_reads_them() -> None:
    for host in ("2130706433", "017700000001", "0x7f000001", "127.1", "0x7f.0.0.1", "127.0.0.1"):
        parsed = parse_numeric_ipv4(host)
        assert parsed is not None and str(parsed) == "127.0.0.1", host
        assert str(parsed) == socket.inet_ntoa(socket.inet_aton(host)), host
    assert parse_numeric_ipv4("example.com") is None


@pytest.mark.parametrize(
    ("url", "address", "port"),
    [
        ("https://example.com/hook?x=1", PUBLIC, 443),
        ("http://example.com:8080/", PUBLIC, 8080),
        ("https://v6.example.com/", "2606:2800:220:1:248:1893:25c8:1946", 443),
        (f"http://{PUBLIC}/", PUBLIC, 80),
    ],
)
def test_a_public_url_connects_to_the_address_that_was_checked(
    url: str, address: str, port: int
) -> None:
    dns = FakeDns(DNS)
    connector = RecordingConnector()
    client = SafeHttpClient(UrlGuard(dns), connector)

    with pytest.raises(UpstreamError):  # the recording connector connects to nothing
        client.post(url, b"{}", {})

    assert connector.calls == [(address, port)]
    assert len(dns.asked) <= 1, "resolved once"


def test_the_allow_list_admits_only_its_networks() -> None:
    guard = UrlGuard(FakeDns(DNS), allow_networks=["127.0.0.1/32"])
    assert guard.check("http://127.0.0.1:8000/x").addresses == ("127.0.0.1",)
    for url in ("http://127.0.0.2/", "http://localhost/", "http://10.0.0.1/"):
        with pytest.raises(UnsafeUrlError):
            guard.check(url)


class _Receiver(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Receiver.seen.append((self.path, self.headers.get("Host")))
        # A redirect to the metadata server: it must not be followed.
        self.send_response(302)
        self.send_header("Location", "http://169.254.169.254/computeMetadata/v1/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_a_redirect_is_returned_not_followed(receiver: int) -> None:
    _Receiver.seen.clear()
    client = SafeHttpClient(UrlGuard(allow_networks=["127.0.0.1/32"]), connect_tcp)

    response = client.post(f"http://127.0.0.1:{receiver}/hook?a=1", b"{}", {})

    assert response.status == 302
    assert _Receiver.seen == [("/hook?a=1", f"127.0.0.1:{receiver}")], "one request only"
