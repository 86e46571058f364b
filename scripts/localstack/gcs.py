"""The GCS emulator (``gcp-storage-emulator``), served from a process of its own.

The emulator is a single-threaded Python HTTP server that parses every multipart
upload with the standard library's email parser: run on a thread of the stack's
process, it competed with the functions for that process's one interpreter lock (a
quarter of it while a batch of PDFs was ingested). In its own process it is what it
stands in for: a storage service next door, reached over HTTP by the real client.

Browsers PUT to V4 signed URLs from other origins: the emulator answers CORS from the
bucket's own ``cors`` configuration, as GCS does, and the stack gives the upload bucket
the configuration Terraform gives it in production (:func:`upload_cors`).

Uploads (``multipart/related``: the object's metadata as JSON, then its bytes) are split
at their boundary here instead of going line by line through the email parser, which
took about 0.12 s of CPU for a 4 MB PDF, so uploading the 20-filing corpus cost a second;
anything else, or anything unexpected, goes to the emulator's own parsing.
"""

from __future__ import annotations

import json
import multiprocessing
import re
from collections.abc import Sequence
from email.message import Message
from email.parser import BytesParser
from pathlib import Path
from typing import Any

# What a browser may send with a signed PUT and read of the answer: infra/terraform's
# upload_cors_headers and ETag.
UPLOAD_CORS_HEADERS = ["Content-Type", "Content-MD5", "x-goog-content-sha256", "ETag"]
# The bucket a request names: JSON API paths (/storage/v1/b/<bucket>/..., uploads under
# /upload) or XML API paths, which signed URLs use (/<bucket>/<object>).
_BUCKET_IN_PATH = re.compile(r"^/(?:upload/)?(?:storage/v1/)?b/([^/?]+)|^/([^/?]+)/")


def upload_cors(origins: Sequence[str]) -> list[dict[str, Any]]:
    """The upload bucket's CORS configuration letting ``origins`` PUT to signed URLs."""
    if not origins:
        return []
    return [
        {
            "origin": list(origins),
            "method": ["PUT", "POST"],
            "responseHeader": UPLOAD_CORS_HEADERS,
            "maxAgeSeconds": 3600,
        }
    ]


class StorageEmulator:
    """Runs the emulator on ``host:port`` with its files in ``data_dir``."""

    def __init__(self, host: str, port: int, data_dir: Path) -> None:
        self.host = host
        self.port = port
        self.data_dir = data_dir
        context = multiprocessing.get_context("spawn")  # no threads or locks inherited
        self._ready = context.Event()
        self._stop = context.Event()
        self._process: Any = context.Process(
            target=_serve,
            args=(host, port, str(data_dir), self._ready, self._stop),
            name="gcs-emulator",
            daemon=True,  # never outlives the stack's process
        )

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the emulator; return once it accepts requests."""
        self._process.start()
        if not self._ready.wait(timeout_s):
            self._process.terminate()
            raise RuntimeError(f"the GCS emulator did not start within {timeout_s} s")

    def stop(self) -> None:
        """Stop the emulator (its files stay in ``data_dir``)."""
        if self._process.pid is None:
            return
        self._stop.set()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)


def _serve(host: str, port: int, data_dir: str, ready: Any, stop: Any) -> None:
    """The emulator process: serve until told to stop."""
    from gcp_storage_emulator.server import create_server

    from scripts.localstack.lifetime import exit_with_parent

    exit_with_parent()
    _split_uploads_at_their_boundary()
    _write_files_atomically()
    _answer_cors_from_bucket_configuration()

    server = create_server(host, port, in_memory=False, data_dir=data_dir)
    server.start()
    ready.set()
    try:
        stop.wait()
    finally:
        server.stop()


def _split_uploads_at_their_boundary() -> None:
    """Route the emulator's ``multipart/related`` request bodies through :func:`split_upload`."""
    from gcp_storage_emulator import server

    original = getattr(server, "_read_data", None)
    read_raw = getattr(server, "_read_raw_data", None)
    decode = getattr(server, "_decode_raw_data", None)
    if original is None or read_raw is None or decode is None:
        return  # another emulator version: leave its parsing alone

    def read_data(request_handler: Any, query: Any) -> Any:
        content_type = request_handler.headers.get("Content-Type") or ""
        if not content_type.startswith("multipart/related"):
            return original(request_handler, query)
        raw = decode(read_raw(request_handler), request_handler)
        if not raw:
            return None
        return split_upload(raw, content_type) or _email_parse(raw, content_type)

    server._read_data = read_data


def _write_files_atomically() -> None:
    """Make every file the emulator writes (objects, its ``.meta`` index) appear whole.

    The emulator writes in place: a stack killed mid-write would leave a torn object
    or a truncated index, and the index unreadable loses the whole bucket on restart.
    Writing to a temporary file and renaming it over the old one is atomic on POSIX,
    so after a crash every file is either its old or its new content.
    """
    import os
    import tempfile

    from gcp_storage_emulator import storage

    file_store = getattr(storage, "_FileStore", None)
    original = getattr(file_store, "write_bytes", None)
    disk_path = getattr(file_store, "_disk_path", None)
    if file_store is None or original is None or disk_path is None:
        return  # another emulator version: leave its writes alone

    def write_bytes(self: Any, rel: str, content: bytes) -> None:
        if getattr(self, "_use_memory", True):
            original(self, rel, content)
            return
        path = Path(disk_path(self, rel))
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(content)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    file_store.write_bytes = write_bytes


def cors_rule(bucket: dict[str, Any] | None, origin: str, method: str) -> dict[str, Any] | None:
    """The bucket's CORS entry allowing ``method`` from ``origin``, or None."""
    for rule in (bucket or {}).get("cors") or []:
        origins = rule.get("origin") or []
        if (origin in origins or "*" in origins) and method in (rule.get("method") or []):
            return dict(rule)
    return None


def _answer_cors_from_bucket_configuration() -> None:
    """Give the emulator's handler CORS: preflights and headers from the bucket's ``cors``."""
    from gcp_storage_emulator import server

    handler = server.RequestHandler
    end_headers = handler.end_headers

    def rule_for(request: Any, method: str) -> dict[str, Any] | None:
        origin = request.headers.get("Origin")
        found = _BUCKET_IN_PATH.match(request.path)
        if not origin or found is None:
            return None
        bucket = request.storage.get_bucket(found.group(1) or found.group(2))
        return cors_rule(bucket, origin, method)

    def end_headers_with_cors(request: Any) -> None:
        rule = rule_for(request, request.command)
        if rule is not None:
            request.send_header("Access-Control-Allow-Origin", request.headers["Origin"])
            request.send_header(
                "Access-Control-Expose-Headers", ", ".join(rule.get("responseHeader") or [])
            )
            request.send_header("Vary", "Origin")
        end_headers(request)

    def do_options(request: Any) -> None:
        rule = rule_for(request, request.headers.get("Access-Control-Request-Method", ""))
        if rule is None:
            # Not an allowed origin and method: no CORS headers, so the browser refuses.
            request.send_response(403)
            request.send_header("Content-Length", "0")
            end_headers(request)
            return
        request.send_response(200)
        request.send_header("Access-Control-Allow-Origin", request.headers["Origin"])
        request.send_header("Access-Control-Allow-Methods", ", ".join(rule["method"]))
        request.send_header(
            "Access-Control-Allow-Headers", ", ".join(rule.get("responseHeader") or [])
        )
        request.send_header("Access-Control-Max-Age", str(rule.get("maxAgeSeconds", 0)))
        request.send_header("Vary", "Origin")
        request.send_header("Content-Length", "0")
        end_headers(request)

    handler.end_headers = end_headers_with_cors
    handler.do_OPTIONS = do_options


def split_upload(raw: bytes, content_type: str) -> dict[str, Any] | None:
    """A GCS multipart upload body as the emulator's handlers expect it, or None.

    The body is ``--boundary``, the JSON metadata part, ``--boundary``, the content
    part, ``--boundary--``, each part's headers ending in a blank line. None for any
    other shape (or a part with a transfer encoding), so the email parser decides.
    """
    header = Message()
    header["Content-Type"] = content_type
    boundary = header.get_boundary()
    if not boundary:
        return None
    delimiter = b"--" + boundary.encode()
    end = raw.rfind(b"\r\n" + delimiter + b"--")
    if not raw.startswith(delimiter + b"\r\n") or end < 0:
        return None
    parts = raw[len(delimiter) + 2 : end].split(b"\r\n" + delimiter + b"\r\n")
    if len(parts) != 2:
        return None
    split: list[tuple[Message, bytes]] = []
    for part in parts:
        head, blank, body = part.partition(b"\r\n\r\n")
        if not blank:
            return None
        headers = BytesParser().parsebytes(head + b"\r\n\r\n", headersonly=True)
        if headers.get("Content-Transfer-Encoding"):
            return None
        split.append((headers, body))
    (_, meta), (content_headers, content) = split
    try:
        metadata = json.loads(meta)
    except ValueError:
        return None
    content_type = content_headers.get_content_type()
    return {"meta": metadata, "content": content, "content-type": content_type}


def _email_parse(raw: bytes, content_type: str) -> Any:
    """The emulator's own reading of a ``multipart/related`` body (its ``_read_data``)."""
    message = BytesParser().parsebytes(f"Content-Type:{content_type}\r\n".encode() + raw)
    payload: Any = message.get_payload()
    return {
        "meta": json.loads(payload[0].get_payload()),
        "content": payload[1].get_payload(decode=True),
        "content-type": payload[1].get_content_type(),
    }
