"""The SSRF guard: which URLs an outbound request may reach.

Every URL a user gives (webhooks today, crawled sources later) is checked here before
any connection is made. A URL passes only if it is ``http`` or ``https``, carries no
credentials, and its host is, or resolves only to, public unicast addresses. Refused:
loopback, private (RFC 1918), CGNAT ``100.64.0.0/10``, link-local (``169.254.0.0/16``,
which holds the cloud metadata server ``169.254.169.254``), unique-local
``fc00::/7``, multicast, unspecified, reserved and documentation ranges, and IPv6
forms that embed an IPv4 address (mapped, 6to4, Teredo, NAT64), plus names that
always mean the machine itself or its metadata server (``localhost``,
``metadata.google.internal``).

Numeric hosts are parsed as the C resolver would (``2130706433``, ``0x7f.1``,
``017700000001`` are all 127.0.0.1), so no spelling of an address slips past the
check. A name is resolved once and *every* address it resolves to must pass; the
caller then connects to one of those checked addresses (:mod:`shared.net.client`),
so a second, different answer from DNS (rebinding) is never used.

The resolver is injectable, so tests give fixed answers and connect to nothing.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.errors import UnsafeUrlError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Resolves ``(host, port)`` to the IP addresses (as text) a connection could use.
Resolver = Callable[[str, int], Sequence[str]]

SCHEMES = {"http": 80, "https": 443}

# Names that mean this machine or the metadata server whatever DNS says.
_FORBIDDEN_NAMES = frozenset({"localhost", "metadata", "metadata.google.internal"})
# Suffixes of names that are never public: loopback, mDNS, private-use TLDs.
_FORBIDDEN_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")

_FORBIDDEN_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # "this network", unspecified
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, the metadata server
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "::/127",  # unspecified, loopback
        "::/96",  # IPv4-compatible (deprecated)
        "100::/64",  # discard
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique-local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


@dataclass(frozen=True)
class Destination:
    """A checked URL: where to connect (one of ``addresses``) and what to ask for.

    Attributes:
        url: The URL as given.
        scheme: ``http`` or ``https``.
        host: The host name (or address) for the ``Host`` header and TLS SNI.
        port: The TCP port.
        target: The request target: path and query (``/`` if empty).
        addresses: Every address the host resolved to; all of them passed the check.
    """

    url: str
    scheme: str
    host: str
    port: int
    target: str
    addresses: tuple[str, ...]


def resolve_host(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (the system resolver), in its order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UnsafeUrlError(f"the host {host!r} does not resolve: {error}") from error
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def forbidden_reason(address: IPAddress) -> str | None:
    """Why a connection to ``address`` is refused, or None if it is public unicast."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "a scoped IPv6 address"
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return f"an IPv6 address embedding the IPv4 address {embedded}"
    for network in _FORBIDDEN_NETWORKS:
        if address.version == network.version and address in network:
            return f"in the non-public range {network}"
    if (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    ):
        return "not a public address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, 6to4, Teredo, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def parse_numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Parse ``host`` as ``inet_aton`` does (decimal, octal, hex; 1 to 4 parts).

    Returns:
        The address, or None if ``host`` is not a numeric IPv4 form at all.

    Raises:
        UnsafeUrlError: It is numeric but not a valid address.
    """
    labels = host.split(".")
    if not 1 <= len(labels) <= 4 or not all(_NUMERIC_LABEL.match(label) for label in labels):
        return None
    try:
        parts = [
            int(label, 16 if label.startswith("0x") else 8 if label.startswith("0") else 10)
            if label not in ("0x", "0")
            else 0
            for label in labels
        ]
    except ValueError as error:
        raise UnsafeUrlError(f"the host {host!r} is not a valid address") from error
    *head, last = parts
    last_bits = 8 * (5 - len(parts))
    if any(part > 0xFF for part in head) or last >= 1 << last_bits:
        raise UnsafeUrlError(f"the host {host!r} is not a valid address")
    value = 0
    for part in head:
        value = value << 8 | part
    return ipaddress.IPv4Address(value << last_bits | last)


def _literal_address(host: str) -> IPAddress | None:
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError as error:
            raise UnsafeUrlError(f"the host {host!r} is not a valid address") from error
    return parse_numeric_ipv4(host)


class UrlGuard:
    """Checks URLs before any connection is made.

    Args:
        resolver: Resolves a host name to addresses (default: the system resolver).
        allow_networks: Networks allowed despite the rules (tests' loopback receiver
            only: ``Settings.outbound_allow_networks``, empty in production).
    """

    def __init__(
        self, resolver: Resolver = resolve_host, allow_networks: Sequence[str] = ()
    ) -> None:
        self._resolver = resolver
        self._allowed = tuple(ipaddress.ip_network(network) for network in allow_networks)

    def check(self, url: str) -> Destination:
        """Check ``url`` and resolve its host once; every address must be public.

        Raises:
            UnsafeUrlError: The URL is malformed, not http(s), carries credentials,
                names a forbidden host, or resolves to any forbidden address.
        """
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as error:
            raise UnsafeUrlError(f"not a valid URL: {error}") from error
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise UnsafeUrlError("only http and https URLs are allowed")
        if parts.username is not None or parts.password is not None:
            raise UnsafeUrlError("a URL may not carry credentials")
        host = (parts.hostname or "").rstrip(".").lower()
        if not host:
            raise UnsafeUrlError("the URL has no host")
        port = port or SCHEMES[scheme]
        literal = _literal_address(host)
        if literal is None:
            if host in _FORBIDDEN_NAMES or host.endswith(_FORBIDDEN_SUFFIXES):
                raise UnsafeUrlError(f"the host {host!r} is not public")
            addresses = [self._parse(host, text) for text in self._resolver(host, port)]
            if not addresses:
                raise UnsafeUrlError(f"the host {host!r} does not resolve")
        else:
            addresses = [literal]
        for address in addresses:
            self._require_public(host, address)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        return Destination(
            url=url,
            scheme=scheme,
            host=host,
            port=port,
            target=target,
            addresses=tuple(str(address) for address in addresses),
        )

    @staticmethod
    def _parse(host: str, text: str) -> IPAddress:
        try:
            return ipaddress.ip_address(text)
        except ValueError as error:
            raise UnsafeUrlError(f"the host {host!r} resolved to {text!r}") from error

    def _require_public(self, host: str, address: IPAddress) -> None:
        if any(address.version == net.version and address in net for net in self._allowed):
            return
        reason = forbidden_reason(address)
        if reason is not None:
            raise UnsafeUrlError(f"the host {host!r} resolves to {address}, {reason}")
