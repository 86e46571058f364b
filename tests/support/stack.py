"""Resetting the shared local stack between tests (or modules that share data)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import make_server

from scripts.localstack.stack import LocalStack

_TABLES = (
    "evaluation_results, evaluation_runs, webhook_deliveries, webhooks, outbox, turn_feedback,"
    " chat_turns, chat_sessions, chunks, document_events, document_versions, access_requests,"
    " kb_grants, workspace_invitations, api_keys, stream_tickets, principals, upload_intents,"
    " source_items, source_runs, sources, documents, knowledge_bases, ingest_rejections,"
    " workspace_limits, quota_counters, version_terms, kb_terms, kb_text_stats,"
    " workspaces"
)
# The audit log refuses TRUNCATE (append-only, migration 0021) to every role; only a
# superuser's replica mode skips its triggers, which the wipe uses and nothing else does.
_APPEND_ONLY = "audit_log"


def wipe_stack(stack: LocalStack) -> None:
    """Empty the stack's database, buckets and drop folder, with nothing left in flight."""
    # Files first (the drop folder deletes their objects), then objects, then rows, so
    # no event still in flight can recreate anything.
    if stack.drop is not None:
        for child in stack.drop.root.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        stack.drop.sync_once()
    client = stack.objects.client
    for bucket in (stack.settings.upload_bucket, stack.settings.work_bucket):
        for blob in list(client.list_blobs(bucket)):
            stack.objects.delete(bucket, blob.name)
    if stack.notifier is not None:
        stack.notifier.poll_once()
    stack.wait_idle(60)
    stack.database.run(f"TRUNCATE {_TABLES} CASCADE")
    with stack.database.transaction() as session:
        session.run("SET LOCAL session_replication_role = replica")
        session.run(f"TRUNCATE {_APPEND_ONLY}")
    stack.bus.published.clear()


@contextmanager
def served(app: Any, port: int = 0) -> Iterator[str]:
    """Serve a WSGI app on ``port`` (0: a free one), threaded; yield its base URL.

    Serving the stack's app on ``stack.port`` makes the URLs in its settings (the
    issuer's, ``auth_jwks_url``) reachable.
    """
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="test-http-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
