"""A local OpenAI-compatible HTTP server for tests, driven by the real ``openai`` client.

It runs ``http.server`` in a background thread on an ephemeral port, records every
request, answers ``POST /v1/embeddings`` with deterministic unit vectors and
``POST /v1/chat/completions`` with a scripted answer (:meth:`OpenAIServer.script_chat`;
streamed as chunks in OpenAI's format, with a final usage chunk when the request asks
for ``stream_options.include_usage``), and lets a test script failures (status,
headers, delays, dropped connections) or whole replies. Other endpoints plug in with
:meth:`OpenAIServer.route`; a :class:`Reply` can stream Server-Sent Events for them,
and :attr:`OpenAIServer.streams` records how far each stream got before the client
went away.

Example::

    with OpenAIServer() as server:
        server.fail(429, headers={"Retry-After": "1"})
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        client.embeddings.create(model="text-embedding-3-small", input=["hi"])
        assert [r.path for r in server.requests] == ["/v1/embeddings"] * 2
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from scripts.localstack.loopback_http import LoopbackHttpServer

DEFAULT_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
MAX_INPUTS = 2048
# What the ``llm`` fixture (tests/conftest.py) configures the answer function with.
LLM_API_KEY = "sk-local-test"
LLM_MODEL = "test-chat-model"


@dataclass
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        """The body parsed as JSON (None if empty or not JSON)."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


@dataclass
class Reply:
    """A scripted response.

    Attributes:
        status: HTTP status.
        body: JSON-serialisable body (ignored when ``stream`` or ``raw`` is set).
        headers: Extra response headers, e.g. ``{"Retry-After": "2"}``.
        delay: Seconds to wait before answering (to provoke client timeouts).
        drop: Close the connection without answering (a connection error).
        raw: Bytes to send verbatim as the body.
        stream: Server-Sent Events: each item is sent as ``data: <item>\\n\\n`` and
            flushed (dicts are JSON-encoded), then ``data: [DONE]``.
        interval: Seconds to wait between two streamed events (a slow model).
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    raw: bytes | None = None
    stream: list[Any] | None = None
    interval: float = 0.0


@dataclass
class StreamRecord:
    """How one streamed reply went.

    Attributes:
        path: The request path.
        total: Events the reply had (``[DONE]`` included).
        sent: Events written before the stream ended.
        aborted: The client closed the connection before the last event.
    """

    path: str
    total: int
    sent: int
    aborted: bool


Handler = Callable[[RecordedRequest], Reply]


def error_reply(
    status: int, message: str = "scripted failure", headers: dict[str, str] | None = None
) -> Reply:
    """A reply in OpenAI's error format."""
    kind = "rate_limit_error" if status == 429 else "invalid_request_error"
    if status >= 500:
        kind = "server_error"
    return Reply(
        status=status,
        body={"error": {"message": message, "type": kind, "param": None, "code": None}},
        headers=dict(headers or {}),
    )


def fake_embedding(text: str, dimension: int) -> list[float]:
    """A deterministic unit vector for ``text`` (same text, same vector)."""
    seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")
    rng = random.Random(seed)
    vector = [rng.gauss(0.0, 1.0) for _ in range(dimension)]
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def embeddings_handler(request: RecordedRequest) -> Reply:
    """Answer ``/v1/embeddings`` like the API: validation, ``dimensions``, base64."""
    payload = request.json
    if not isinstance(payload, dict) or "model" not in payload or "input" not in payload:
        return error_reply(400, "model and input are required")
    inputs = payload["input"]
    if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)):
        inputs = [inputs]
    if not inputs or len(inputs) > MAX_INPUTS:
        return error_reply(400, f"input must hold 1..{MAX_INPUTS} items")
    if any(item == "" or item == [] for item in inputs):
        return error_reply(400, "'$.input' is invalid: empty string")
    dimension = payload.get("dimensions") or DEFAULT_DIMENSIONS.get(payload["model"], 8)
    data = []
    for index, item in enumerate(inputs):
        text = item if isinstance(item, str) else " ".join(map(str, item))
        vector = fake_embedding(text, dimension)
        embedding: Any = vector
        if payload.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack(f"<{dimension}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(len(item.split()) if isinstance(item, str) else len(item) for item in inputs)
    return Reply(
        body={
            "object": "list",
            "data": data,
            "model": payload["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def chat_usage(messages: list[dict[str, Any]], deltas: list[str]) -> dict[str, int]:
    """Deterministic usage: prompt = words of all messages, completion = deltas."""
    prompt = sum(len(str(message.get("content") or "").split()) for message in messages)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": len(deltas),
        "total_tokens": prompt + len(deltas),
    }


def chat_chunk(model: str, delta: dict[str, Any], finish_reason: str | None = None) -> Any:
    """One ``chat.completion.chunk`` event."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


ChatScript = str | list[str] | Callable[[RecordedRequest], str | list[str]]


class OpenAIServer(LoopbackHttpServer):
    """An OpenAI-compatible server on ``127.0.0.1:<ephemeral port>`` in a thread.

    Scripted replies (:meth:`enqueue`, :meth:`fail`) are consumed first, in order, per
    path; then the path's handler answers (:meth:`route`; embeddings built in).

    Args:
        api_key: If set, requests without ``Authorization: Bearer <api_key>`` get 401.
    """

    def __init__(self, api_key: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self._routes: dict[str, Handler] = {
            "/v1/embeddings": embeddings_handler,
            "/v1/chat/completions": self._chat_completions,
        }
        self._scripted: dict[str, deque[Reply]] = {}
        self._lock = threading.Lock()
        self._chat: ChatScript = "This is a scripted answer."
        self._chat_interval = 0.0
        self.streams: list[StreamRecord] = []
        self._stream_done = threading.Condition(self._lock)

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        """This server's request handler."""
        return _make_handler(self)

    # -- programming -------------------------------------------------------------------

    def route(self, path: str, handler: Handler) -> None:
        """Answer ``path`` (e.g. ``/v1/chat/completions``) with ``handler``."""
        with self._lock:
            self._routes[path] = handler

    def enqueue(self, *replies: Reply, path: str = "/v1/embeddings") -> None:
        """Answer the next requests to ``path`` with ``replies``, in order."""
        with self._lock:
            self._scripted.setdefault(path, deque()).extend(replies)

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        path: str = "/v1/embeddings",
    ) -> None:
        """Answer the next ``times`` requests to ``path`` with an error ``status``."""
        self.enqueue(*(error_reply(status, headers=headers) for _ in range(times)), path=path)

    def script_chat(self, answer: ChatScript, *, interval: float = 0.0) -> None:
        """Set what ``/v1/chat/completions`` answers from now on.

        Args:
            answer: The answer text (streamed word by word), the exact list of streamed
                deltas, or a function of the request returning either.
            interval: Seconds between two streamed chunks.
        """
        with self._lock:
            self._chat = answer
            self._chat_interval = interval

    def wait_streams(self, count: int = 1, timeout: float = 5.0) -> list[StreamRecord]:
        """Wait until ``count`` streamed replies have ended; return all records."""
        with self._stream_done:
            self._stream_done.wait_for(lambda: len(self.streams) >= count, timeout)
            return list(self.streams)

    def reset(self) -> None:
        """Forget recorded requests, stream records and pending scripted replies."""
        with self._lock:
            self.requests.clear()
            self.streams.clear()
            self._scripted.clear()

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """Recorded requests to ``path``, in arrival order."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # -- serving -----------------------------------------------------------------------

    def _chat_completions(self, request: RecordedRequest) -> Reply:
        """Answer ``/v1/chat/completions`` like the API, with the scripted answer."""
        payload = request.json
        messages = payload.get("messages") if isinstance(payload, dict) else None
        if not isinstance(payload, dict) or "model" not in payload or not messages:
            return error_reply(400, "model and messages are required")
        if not all(isinstance(m, dict) and "role" in m for m in messages):
            return error_reply(400, "each message needs a role")
        with self._lock:
            script, interval = self._chat, self._chat_interval
        answer = script(request) if callable(script) else script
        deltas = re.findall(r"\s*\S+", answer) if isinstance(answer, str) else list(answer)
        model = payload["model"]
        usage = chat_usage(messages, deltas)
        if not payload.get("stream"):
            return Reply(
                body={
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": 0,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": "".join(deltas),
                                "refusal": None,
                            },
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
        include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
        events = [chat_chunk(model, {"role": "assistant", "content": ""})]
        events += [chat_chunk(model, {"content": delta}) for delta in deltas]
        events.append(chat_chunk(model, {}, "stop"))
        if include_usage:
            # As the API does: "usage": null on every chunk, then a choiceless usage chunk.
            for event in events:
                event["usage"] = None
            events.append({**chat_chunk(model, {}), "choices": [], "usage": usage})
        return Reply(stream=events, interval=interval)

    def _record_stream(self, record: StreamRecord) -> None:
        with self._stream_done:
            self.streams.append(record)
            self._stream_done.notify_all()

    def _answer(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            queue = self._scripted.get(request.path)
            if queue:
                return queue.popleft()
            handler = self._routes.get(request.path)
        expected = f"Bearer {self.api_key}"
        if self.api_key is not None and request.headers.get("authorization") != expected:
            return error_reply(401, "invalid api key")
        if handler is None:
            return error_reply(404, f"no route for {request.path}")
        return handler(request)


def _make_handler(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = RecordedRequest(
                method=self.command,
                path=self.path.split("?", 1)[0],
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            reply = server._answer(request)
            if reply.delay:
                time.sleep(reply.delay)
            if reply.drop:
                # An abrupt close with no response: the client sees a connection error.
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if reply.stream is not None:
                self._send_stream(reply)
                return
            payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def _send_stream(self, reply: Reply) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            events: list[Any] = [*(reply.stream or []), "[DONE]"]
            sent, aborted = 0, False
            try:
                for index, event in enumerate(events):
                    if index and reply.interval:
                        time.sleep(reply.interval)
                    data = event if isinstance(event, str) else json.dumps(event)
                    self.wfile.write(f"data: {data}\n\n".encode())
                    self.wfile.flush()
                    sent += 1
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                # The client went away mid-stream (e.g. it closed the response).
                aborted = True
            finally:
                self.close_connection = True
                server._record_stream(
                    StreamRecord(
                        path=self.path.split("?", 1)[0],
                        total=len(events),
                        sent=sent,
                        aborted=aborted,
                    )
                )

        do_POST = _handle  # noqa: N815 - http.server's naming
        do_GET = _handle  # noqa: N815
        do_DELETE = _handle  # noqa: N815

    return _Handler
