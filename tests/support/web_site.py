"""A small web site on the loopback interface that records every request it gets.

Pages are held in a dict by path; a page with an ``ETag`` or ``Last-Modified`` answers a
matching conditional request with 304 and no body. Tests prove a page was never asked
for (robots.txt, scope) from the log.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Page:
    body: bytes = b""
    status: int = 200
    content_type: str | None = "text/html; charset=utf-8"
    etag: str | None = None
    last_modified: str | None = None
    location: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    send_length: bool = True


@dataclass
class Served:
    path: str
    status: int
    headers: dict[str, str]


class Site:
    """Pages by path, and a log of what was requested and answered."""

    def __init__(self) -> None:
        self.pages: dict[str, Page] = {}
        self.log: list[Served] = []
        self.base = ""

    def url(self, path: str) -> str:
        return self.base + path

    def html(self, path: str, *links: str, text: str = "", **options: object) -> None:
        anchors = "".join(f'<a href="{link}">{link}</a> ' for link in links)
        body = f"<!doctype html><html><body><h1>{path}</h1><p>{text}</p>{anchors}</body></html>"
        self.pages[path] = Page(body.encode(), **options)  # type: ignore[arg-type]

    def requested(self) -> list[str]:
        return [served.path for served in self.log]


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = site.pages.get(self.path)
            headers = {key.lower(): value for key, value in self.headers.items()}
            status = 404 if page is None else page.status
            if page is not None and status == 200 and _not_modified(page, headers):
                status = 304
            site.log.append(Served(self.path, status, headers))
            self.send_response(status)
            body = b""
            if page is not None:
                for name, value in (
                    ("Content-Type", page.content_type),
                    ("ETag", page.etag),
                    ("Last-Modified", page.last_modified),
                    ("Location", page.location),
                    *page.headers.items(),
                ):
                    if value is not None:
                        self.send_header(name, value)
                body = page.body if status == 200 else b""
            if page is None or page.send_length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


def _not_modified(page: Page, headers: dict[str, str]) -> bool:
    if page.etag is not None and "if-none-match" in headers:
        return headers["if-none-match"] == page.etag
    return page.last_modified is not None and headers.get("if-modified-since") == (
        page.last_modified
    )


@contextmanager
def serve_site() -> Iterator[Site]:
    """Serve an empty :class:`Site` on 127.0.0.1 (an ephemeral port) while in the block."""
    served = Site()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    served.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
