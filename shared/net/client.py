"""An HTTP client for user-given URLs: checked by the guard, connected to checked addresses.

:class:`SafeHttpClient` checks the URL with :class:`~shared.net.guard.UrlGuard`
(resolving the host once), then connects to one of the addresses that passed, keeping
the original host name for the ``Host`` header and TLS (SNI and certificate check).
It never follows redirects: a 3xx is returned as the response, and a caller that
wants to follow one checks the ``Location`` URL again like any other
(:mod:`shared.sources.web.fetch` does, hop by hop).

A response body is read up to a limit: by default the rest is dropped (a webhook
receiver's answer is for the log only); with ``refuse_larger`` a larger body is an
error instead of a truncated one, and a ``deadline`` caps the whole exchange.

The connector is injectable, so tests record connection attempts instead of making
them (and can prove a refused URL never reaches it).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shared.errors import LimitExceededError, UpstreamError
from shared.net.guard import Destination, UrlGuard

#: Opens a TCP connection to ``(address, port)`` within ``timeout`` seconds.
Connector = Callable[[str, int, float], socket.socket]

#: The most bytes of a response body kept (a receiver's answer is for the log only).
MAX_RESPONSE_BYTES = 64 * 1024

_READ_CHUNK = 64 * 1024


def connect_tcp(address: str, port: int, timeout: float) -> socket.socket:
    """Open a TCP connection to an already checked address."""
    return socket.create_connection((address, port), timeout=timeout)


@dataclass(frozen=True)
class HttpResponse:
    """What the server answered: status, headers and the start of the body."""

    status: int
    headers: dict[str, str]
    body: bytes


class SafeHttpClient:
    """Sends requests only to URLs the guard passes, never following redirects.

    Args:
        guard: Checks each URL and resolves its host.
        connector: Opens the TCP connection to a checked address.
        timeout_s: Seconds to connect, and between two reads of the response.
    """

    def __init__(
        self, guard: UrlGuard, connector: Connector = connect_tcp, *, timeout_s: float = 10.0
    ) -> None:
        self.guard = guard
        self._connector = connector
        self._timeout_s = timeout_s

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> HttpResponse:
        """POST ``body`` to ``url``.

        Raises:
            UnsafeUrlError: The guard refused the URL (nothing was connected to).
            UpstreamError: No connection could be made, or the exchange failed.
        """
        destination = self.guard.check(url)
        return self.request("POST", destination, body, headers)

    def request(
        self,
        method: str,
        destination: Destination,
        body: bytes | None,
        headers: Mapping[str, str],
        *,
        max_body_bytes: int = MAX_RESPONSE_BYTES,
        refuse_larger: bool = False,
        deadline: float | None = None,
    ) -> HttpResponse:
        """Send one request to a checked destination and read the answer.

        Args:
            method: The HTTP method.
            destination: Where to send it (checked by the guard).
            body: The request body, if any.
            headers: Request headers (``Host`` is the destination's host).
            max_body_bytes: The most bytes of the response body read.
            refuse_larger: Raise instead of truncating a body larger than
                ``max_body_bytes`` (reading stops as soon as it is past the limit).
            deadline: A ``time.monotonic()`` instant by which the whole exchange,
                connection included, must be done.

        Raises:
            LimitExceededError: ``refuse_larger`` and the body is larger than the limit
                (code ``too_large``).
            UpstreamError: No connection, a failed exchange, or the deadline passed
                (all retryable).
        """
        sock = self._connect(destination, deadline)
        connection = http.client.HTTPConnection(
            destination.host, destination.port, timeout=self._timeout_s
        )
        # The socket is already connected to the checked address: http.client uses it
        # as is, and the Host header still names the URL's host.
        connection.sock = sock
        try:
            connection.request(method, destination.target, body=body, headers=dict(headers))
            response = connection.getresponse()
            if refuse_larger:
                data = self._read_capped(response, sock, max_body_bytes, deadline)
            else:
                data = response.read(max_body_bytes)
            return HttpResponse(
                status=response.status,
                headers={key.lower(): value for key, value in response.getheaders()},
                body=data,
            )
        except (OSError, http.client.HTTPException) as error:
            raise UpstreamError(
                f"{method} {destination.url} failed: {type(error).__name__}: {error}",
                code="timeout" if isinstance(error, TimeoutError) else "upstream_request_failed",
                retryable=True,
            ) from error
        finally:
            connection.close()

    def _read_capped(
        self,
        response: http.client.HTTPResponse,
        sock: socket.socket,
        limit: int,
        deadline: float | None,
    ) -> bytes:
        """Read the whole body, refusing it once it is past ``limit`` bytes."""
        declared = response.getheader("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            sock.settimeout(_remaining(deadline, self._timeout_s))
            chunk = response.read1(_READ_CHUNK)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)

    def _connect(self, destination: Destination, deadline: float | None = None) -> socket.socket:
        errors: list[str] = []
        for address in destination.addresses:
            try:
                timeout = _remaining(deadline, self._timeout_s)
                sock = self._connector(address, destination.port, timeout)
            except OSError as error:
                errors.append(f"{address}: {error}")
                continue
            if destination.scheme != "https":
                return sock
            try:
                context = ssl.create_default_context()
                return context.wrap_socket(sock, server_hostname=destination.host)
            except (OSError, ssl.SSLError) as error:
                sock.close()
                errors.append(f"{address}: TLS: {error}")
        raise UpstreamError(
            f"could not connect to {destination.host}: {'; '.join(errors)}",
            code="upstream_unreachable",
            retryable=True,
        )


def _remaining(deadline: float | None, timeout_s: float) -> float:
    """Seconds the next socket operation may take: the timeout, cut to the deadline."""
    if deadline is None:
        return timeout_s
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the time allowed for the request ran out")
    return min(timeout_s, left)


def _too_large(limit: int) -> LimitExceededError:
    return LimitExceededError(
        f"the response is larger than the limit of {limit} bytes", code="too_large"
    )
