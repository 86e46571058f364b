"""Cold start to first response: a fresh process per function target, timed to its first 2xx.

One local stack (embedded PostgreSQL, the GCS emulator, the local ID-token issuer served
on its origin) is started once and seeded: a knowledge base with one ready document,
and for ``parse`` one registered version per run whose parse message was held back.
Pub/Sub publishes of the probed process go to a minimal in-process Publisher service
(``PUBSUB_EMULATOR_HOST``), which answers every ``Publish`` with message ids.

Each run starts ``python`` with functions-framework's app for one target
(``functions_framework.create_app(target, "main.py")``) under werkzeug's server on a
free loopback port, with the stack's environment, and sends the target's probe request
until one succeeds. Reported per run: the seconds from starting the process to the
first successful response (interpreter start-up, imports, the app, lazy clients, the
first database connection and query, the request itself), and to the port accepting
connections. The probes are real requests of each target: an authenticated read for
``manage`` and ``upload``, a question answered from the seeded document for ``answer``,
a Cloud Tasks body for ``embed`` (a version already embedded) and ``deliver_webhook``
(an event that does not exist), the sweep, and a Pub/Sub push of a real small document
for ``parse``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.bench.common import REPO, median

HTTP_TARGETS = ("answer", "manage", "upload", "embed", "sweep", "deliver_webhook")
EVENT_TARGETS = ("parse",)
TARGETS = (*HTTP_TARGETS, *EVENT_TARGETS)
DOCUMENT = (
    "# Liquidity\n\nThe company held cash and cash equivalents of 48.3 billion dollars at the"
    " end of the quarter. Operating cash flow was 23.0 billion dollars, and the board"
    " authorised a further 90 billion dollars of share repurchases.\n"
)
QUESTION = "How much cash did the company hold at the end of the quarter?"
SERVER = """
import sys
from werkzeug.serving import make_server
import functions_framework
app = functions_framework.create_app(sys.argv[1], "main.py")
make_server("127.0.0.1", int(sys.argv[2]), app, threaded=True).serve_forever()
"""
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Probe:
    """The request that shows a target serving: method, path, body, headers."""

    method: str
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class FirstResponse:
    """One fresh process, timed.

    Attributes:
        target: The function target.
        listening_ms: From starting the process to the port accepting connections.
        first_response_ms: From starting the process to the first successful response.
        status: The HTTP status of that response.
    """

    target: str
    listening_ms: float
    first_response_ms: float
    status: int


def free_port() -> int:
    """An unused TCP port on the loopback interface."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def publisher_service() -> Iterator[str]:
    """A ``google.pubsub.v1.Publisher`` answering every Publish; yields its ``host:port``."""
    import grpc
    from google.pubsub_v1 import types

    counter = iter(range(1, 1 << 62))
    lock = threading.Lock()

    def publish(request: Any, context: Any) -> Any:
        with lock:
            ids = [str(next(counter)) for _ in request.messages]
        return types.PublishResponse(message_ids=ids)

    handler = grpc.method_handlers_generic_handler(
        "google.pubsub.v1.Publisher",
        {
            "Publish": grpc.unary_unary_rpc_method_handler(
                publish,
                request_deserializer=types.PublishRequest.deserialize,
                response_serializer=types.PublishResponse.serialize,
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def push_body(message: dict[str, Any], project: str, topic: str) -> bytes:
    """A Pub/Sub push request's body, as a push subscription sends it."""
    return json.dumps(
        {
            "message": {
                "data": base64.b64encode(json.dumps(message).encode()).decode(),
                "attributes": {},
                "messageId": str(uuid.uuid4().int % 10**15),
                # The pipeline fails versions whose events are too old: this one is new.
                "publishTime": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
            },
            "subscription": f"projects/{project}/subscriptions/{topic}-push",
        }
    ).encode()


def time_first_response(target: str, probe: Probe, env: dict[str, str]) -> FirstResponse:
    """Start a fresh process serving ``target``; time it to ``probe``'s first 2xx."""
    port = free_port()
    url = f"http://127.0.0.1:{port}{probe.path}"
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, target, str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        listening = _wait_listening(process, port, started, target)
        request = urllib.request.Request(
            url, data=probe.body or None, method=probe.method, headers=probe.headers
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            raise RuntimeError(
                f"{target}: {probe.method} {probe.path} -> {error.code}: {error.read()[:500]!r}"
            ) from error
        done = time.perf_counter()
        return FirstResponse(target, (listening - started) * 1000, (done - started) * 1000, status)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_listening(
    process: subprocess.Popen[bytes], port: int, started: float, target: str
) -> float:
    """Connect until the process accepts; return when it did (perf_counter)."""
    while time.perf_counter() - started < TIMEOUT_S:
        if process.poll() is not None:
            raise RuntimeError(f"{target} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return time.perf_counter()
        except OSError:
            time.sleep(0.002)
    raise TimeoutError(f"{target} did not listen within {TIMEOUT_S} s")


class Seeded:
    """The local stack, served on its origin, with what the probes read."""

    def __init__(self, data: Path) -> None:
        from scripts.localstack.stack import LocalStack, StackConfig

        self.stack = LocalStack(
            StackConfig(data_dir=data, drop_folder=False, notify=False, sweep_interval_s=None)
        ).start()
        self.server = self.stack.server()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        from werkzeug.test import Client

        self.client = Client(self.stack.as_owner())
        created = self.client.post("/v1/knowledge-bases", json={"name": "first-response"})
        assert created.status_code == 201, created.get_data(as_text=True)
        self.kb_id = str((created.json or {})["id"])
        self.ready_version = self._upload("seed.md", DOCUMENT)
        self.stack.wait_idle(120)
        self.token = self.stack.owner_token(ttl=3600)

    def _upload(self, name: str, text: str) -> str:
        import io

        form = {"file": (io.BytesIO(text.encode()), name)}
        response = self.client.post(f"/v1/knowledge-bases/{self.kb_id}/documents", data=form)
        assert response.status_code == 202, response.get_data(as_text=True)
        return str((response.json or {})["version_id"])

    def held_parse(self) -> dict[str, Any]:
        """Register a new small document whose parse message is held back; return it."""
        held: list[Any] = []
        bus = self.stack.runtime.publisher

        class Hold:
            def publish(self, topic: str, message: Any) -> str:
                held.append(message)
                return str(len(held))

        self.stack.runtime.publisher = Hold()
        try:
            self._upload(f"held-{uuid.uuid4().hex[:8]}.md", DOCUMENT.replace("48.3", "51.2"))
        finally:
            self.stack.runtime.publisher = bus
        [message] = held
        return dict(message.model_dump(mode="json"))

    def probe(self, target: str) -> Probe:
        """The request that shows ``target`` serving."""
        auth = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        tasks = {"Content-Type": "application/json"}
        if target == "manage":
            return Probe("GET", "/v1/knowledge-bases", b"", auth)
        if target == "upload":
            return Probe("GET", f"/v1/knowledge-bases/{self.kb_id}/documents", b"", auth)
        if target == "answer":
            ask = {"knowledge_base_ids": [self.kb_id], "question": QUESTION}
            return Probe("POST", "/v1/ask", json.dumps(ask).encode(), auth)
        if target == "embed":
            embed = {"version_id": self.ready_version, "first_ordinal": 0, "last_ordinal": 0}
            return Probe("POST", "/", json.dumps(embed).encode(), tasks)
        if target == "sweep":
            return Probe("POST", "/", b"{}", tasks)
        if target == "deliver_webhook":
            webhook = {"webhook_id": str(uuid.uuid4()), "event_id": str(uuid.uuid4())}
            return Probe("POST", "/", json.dumps(webhook).encode(), tasks)
        if target == "parse":
            settings = self.stack.settings
            body = push_body(self.held_parse(), settings.project, settings.topic_parse)
            path = f"/projects/{settings.project}/topics/{settings.topic_parse}"
            return Probe("POST", path, body, tasks)
        raise ValueError(f"no probe for {target}")

    def stop(self) -> None:
        """Stop serving and stop the stack."""
        self.server.shutdown()
        self.stack.stop()


def measure(repeats: int, data: Path) -> dict[str, dict[str, Any]]:
    """Per target: median and samples of first-response and listening times (ms)."""
    seeded = Seeded(data)
    runs: dict[str, list[FirstResponse]] = {target: [] for target in TARGETS}
    try:
        with publisher_service() as pubsub:
            env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
            env["PUBSUB_EMULATOR_HOST"] = pubsub
            for round_ in range(repeats + 1):  # the first round writes .pyc files: untimed
                for target in TARGETS:
                    outcome = time_first_response(target, seeded.probe(target), env)
                    if round_:
                        runs[target].append(outcome)
                print(f"first response: round {round_}/{repeats} done", flush=True)
            parsed = seeded.stack.database.scalar(
                "SELECT count(*) FROM document_versions WHERE parsing_at IS NOT NULL"
                " AND kb_id = CAST(:k AS uuid)",
                k=seeded.kb_id,
            )
    finally:
        seeded.stop()
    if int(parsed) < 1 + repeats:
        raise RuntimeError(f"parse answered but only {parsed} versions were parsed")
    return {
        target: {
            "first_response_ms": round(median([r.first_response_ms for r in outcomes]), 1),
            "listening_ms": round(median([r.listening_ms for r in outcomes]), 1),
            "samples_ms": [round(r.first_response_ms, 1) for r in outcomes],
        }
        for target, outcomes in runs.items()
    }
