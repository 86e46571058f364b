"""What a function instance works with, built once per instance, each part on first use.

Steps and API handlers receive a :class:`Runtime` and take their database, object store,
publisher, task queue and settings from it, never from module globals. Production builds
one lazily from the environment (:func:`get_runtime`); the local stack and tests build
one from real components pointed at the embedded database and the emulators, and install
it with :func:`set_runtime`.

Every part is created on first use, so a function that never publishes never imports the
Pub/Sub client (cold starts matter), and a part given to the constructor is used as is.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from shared.config import ParseLimits, Settings, get_parse_limits, get_settings

if TYPE_CHECKING:
    from shared.db.connection import Database
    from shared.events import Publisher, TaskQueue
    from shared.identity.tokens import TokenVerifier
    from shared.models import ParsedDocument
    from shared.net.client import SafeHttpClient
    from shared.storage import ObjectStore


class DocumentParser(Protocol):
    """Turns a document's bytes into its parsed text (``shared.parsing.parse_document``)."""

    def __call__(
        self, data: bytes, *, filename: str | None = None, limits: ParseLimits | None = None
    ) -> ParsedDocument:
        """Parse ``data``; raise a PermanentError subclass for input that cannot be."""
        ...


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Runtime:
    """The dependencies of one instance: settings and lazily created clients.

    Args:
        settings: This instance's settings (default: read from the environment).
        parse_limits: Limits of the parse step (default: read from the environment).
        database: A ready pool; by default one is opened from the settings on first use.
        objects: A ready object store; by default one with the default storage client.
        publisher: A ready publisher; by default Pub/Sub.
        tasks: A ready task queue; by default Cloud Tasks targeting the embed function.
        webhook_tasks: A ready queue of webhook deliveries; by default Cloud Tasks
            targeting the deliver_webhook function.
        sync_tasks: A ready queue of source sync tasks; by default Cloud Tasks
            targeting the sync function.
        outbound: The client for user-given URLs (default: SSRF-guarded, from settings).
        token_verifier: The ID-token verifier (default: the settings' issuer's).
        parser: The document parser (default :func:`shared.parsing.parse_document`; the
            local stack passes one that parses PDFs in worker processes).
        clock: The current time, aware (default: the system's, UTC); quota windows read
            it, so tests can move to the next window.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        parse_limits: ParseLimits | None = None,
        database: Database | None = None,
        objects: ObjectStore | None = None,
        publisher: Publisher | None = None,
        tasks: TaskQueue | None = None,
        webhook_tasks: TaskQueue | None = None,
        sync_tasks: TaskQueue | None = None,
        outbound: SafeHttpClient | None = None,
        parser: DocumentParser | None = None,
        token_verifier: TokenVerifier | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.clock: Callable[[], dt.datetime] = clock or _utc_now
        self.parse_limits = parse_limits or get_parse_limits()
        self._database = database
        self._objects = objects
        self._publisher = publisher
        self._tasks = tasks
        self._webhook_tasks = webhook_tasks
        self._sync_tasks = sync_tasks
        self._outbound = outbound
        self._parser = parser
        self._verifier = token_verifier
        self._verifier_built = token_verifier is not None
        # Gen2 functions may serve concurrent requests on threads: one client each.
        self._lock = threading.Lock()

    @property
    def database(self) -> Database:
        """The connection pool, opened on first use."""
        with self._lock:
            if self._database is None:
                from shared.db.connection import open_database

                self._database = open_database(self.settings)
            return self._database

    @property
    def token_verifier(self) -> TokenVerifier | None:
        """The ID-token verifier the settings describe (None: no issuer configured).

        One per instance, so the issuer's keys are fetched once per cache window.
        """
        with self._lock:
            if not self._verifier_built:
                from shared.identity.tokens import id_token_verifier

                self._verifier = id_token_verifier(self.settings)
                self._verifier_built = True
            return self._verifier

    @property
    def objects(self) -> ObjectStore:
        """The object store, created on first use."""
        with self._lock:
            if self._objects is None:
                from shared.storage import ObjectStore

                self._objects = ObjectStore(project=self.settings.project)
            return self._objects

    @property
    def publisher(self) -> Publisher:
        """The topic publisher (Pub/Sub), created on first use."""
        with self._lock:
            if self._publisher is None:
                from shared.gcp.pubsub import PubSubPublisher

                self._publisher = PubSubPublisher(project=self.settings.project)
            return self._publisher

    @publisher.setter
    def publisher(self, value: Publisher) -> None:
        with self._lock:
            self._publisher = value

    @property
    def tasks(self) -> TaskQueue:
        """The embed task queue (Cloud Tasks), created on first use."""
        with self._lock:
            if self._tasks is None:
                from shared.gcp.tasks import CloudTasksQueue

                settings = self.settings
                self._tasks = CloudTasksQueue(
                    project=settings.project,
                    location=settings.tasks_location,
                    queue=settings.tasks_queue,
                    target_url=settings.embed_url,
                    service_account_email=settings.tasks_service_account,
                    dispatch_deadline_s=settings.embed_dispatch_deadline_s,
                )
            return self._tasks

    @tasks.setter
    def tasks(self, value: TaskQueue) -> None:
        with self._lock:
            self._tasks = value

    @property
    def webhook_tasks(self) -> TaskQueue:
        """The webhook delivery queue (Cloud Tasks), created on first use."""
        with self._lock:
            if self._webhook_tasks is None:
                from shared.gcp.tasks import CloudTasksQueue

                settings = self.settings
                self._webhook_tasks = CloudTasksQueue(
                    project=settings.project,
                    location=settings.tasks_location,
                    queue=settings.webhook_tasks_queue,
                    target_url=settings.webhook_delivery_url,
                    service_account_email=settings.tasks_service_account,
                )
            return self._webhook_tasks

    @webhook_tasks.setter
    def webhook_tasks(self, value: TaskQueue) -> None:
        with self._lock:
            self._webhook_tasks = value

    @property
    def sync_tasks(self) -> TaskQueue:
        """The source sync queue (Cloud Tasks), created on first use."""
        with self._lock:
            if self._sync_tasks is None:
                from shared.gcp.tasks import CloudTasksQueue

                settings = self.settings
                self._sync_tasks = CloudTasksQueue(
                    project=settings.project,
                    location=settings.tasks_location,
                    queue=settings.sync_tasks_queue,
                    target_url=settings.sync_url,
                    service_account_email=settings.tasks_service_account,
                )
            return self._sync_tasks

    @sync_tasks.setter
    def sync_tasks(self, value: TaskQueue) -> None:
        with self._lock:
            self._sync_tasks = value

    @property
    def outbound(self) -> SafeHttpClient:
        """The HTTP client for user-given URLs (SSRF-guarded), created on first use."""
        with self._lock:
            if self._outbound is None:
                from shared.net.client import SafeHttpClient
                from shared.net.guard import UrlGuard

                settings = self.settings
                guard = UrlGuard(allow_networks=settings.outbound_allow_networks)
                self._outbound = SafeHttpClient(guard, timeout_s=settings.webhook_timeout_s)
            return self._outbound

    @outbound.setter
    def outbound(self, value: SafeHttpClient) -> None:
        with self._lock:
            self._outbound = value

    @property
    def parser(self) -> DocumentParser:
        """The document parser; the parsing modules load on first use."""
        if self._parser is None:
            from shared.parsing import parse_document

            self._parser = parse_document
        return self._parser

    def close(self) -> None:
        """Close the database pool if one was opened."""
        with self._lock:
            if self._database is not None:
                self._database.close()


_lock = threading.Lock()
_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """This instance's runtime, built from the environment on first use."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = Runtime()
        return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Install ``runtime`` for this process (the local stack does; None forgets it)."""
    global _runtime
    with _lock:
        _runtime = runtime
