"""One small interface over pg8000 connections, local or Cloud SQL.

pg8000 has two front ends: ``pg8000.native`` (what the local stack opens) and
``pg8000.dbapi`` (what the Cloud SQL connector hands out). Both share
``pg8000.core.CoreConnection``, so :class:`Database` talks to that core directly with
named parameters (``:name``) and explicit transactions, and behaves the same on both.
Vectors cross the wire as text (``'[1,2,3]'::vector``), which needs no adapter
registration and therefore works on either connection type.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import re
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlparse

from shared import tracing
from shared.config import Settings
from shared.db.commit_hooks import current_hook

Row = tuple[Any, ...]
ConnectionFactory = Callable[[], Any]
RecordT = TypeVar("RecordT")

# Errors after which a connection cannot be trusted and is thrown away.
_BROKEN_HINTS = ("network error", "connection is closed", "broken pipe", "unexpected eof")


@functools.lru_cache(maxsize=512)
def _statement(sql: str) -> tuple[str, Callable[[dict[str, Any]], tuple[Any, ...]]]:
    """``sql`` with ``:name`` parameters rewritten to ``$n``, and the values' order.

    Cached, since pg8000 rewrites by scanning the text character by character in
    Python, on every call otherwise.
    """
    from pg8000.native import to_statement

    statement: tuple[str, Callable[[dict[str, Any]], tuple[Any, ...]]] = to_statement(sql)
    return statement


# Statements with parameters are prepared once per connection and then executed by
# name: one round trip per execution instead of pg8000's three for an unnamed statement
# (parse, describe, execute), which is most of a short statement's cost. The server
# still plans every execution with its values (``plan_cache_mode =
# force_custom_plan``, set when the pool opens a connection), as it did before: a
# generic plan could not tell a selective filter from none. Bounded per connection;
# the least recently used statement is closed when a new one would exceed the bound.
MAX_PREPARED_PER_CONNECTION = 128


@dataclass
class _Prepared:
    name: bytes
    columns: Any
    input_funcs: Any
    statement: str
    make_values: Callable[[dict[str, Any]], tuple[Any, ...]]


def _execute_prepared(connection: Any, sql: str, params: dict[str, Any], span: Any) -> Any:
    from pg8000.converters import make_params

    cache: OrderedDict[str, _Prepared] | None = getattr(connection, "_ragline_prepared", None)
    if cache is None:
        cache = OrderedDict()
        connection._ragline_prepared = cache
    prepared = cache.get(sql)
    round_trips = 1  # bind + execute + sync
    if prepared is None:
        statement, make_values = _statement(sql)
        # Parse + describe + sync: one round trip more, this time only.
        name, columns, input_funcs = connection.prepare_statement(statement, ())
        round_trips += 1
        prepared = cache[sql] = _Prepared(name, columns, input_funcs, statement, make_values)
        if len(cache) > MAX_PREPARED_PER_CONNECTION:
            _, evicted = cache.popitem(last=False)
            connection.close_prepared_statement(evicted.name)
            round_trips += 1
    else:
        cache.move_to_end(sql)
    span.set_attribute("ragline.db.prepared", round_trips > 1)
    span.set_attribute("ragline.db.round_trips", round_trips)
    values = make_params(connection.py_types, prepared.make_values(params))
    try:
        return connection.execute_named(
            prepared.name, values, prepared.columns, prepared.input_funcs, prepared.statement
        )
    except Exception as error:
        # "cached plan must not change result type" (a migration altered a table) or
        # "prepared statement does not exist": prepare afresh next time. Any other
        # error (a constraint, a bad value) leaves the statement as good as it was.
        if _sqlstate(error) in _STALE_STATEMENT:
            cache.pop(sql, None)
        raise


_STALE_STATEMENT = frozenset({"0A000", "26000"})


def _sqlstate(error: Exception) -> str | None:
    """The SQLSTATE of a pg8000 database error, if it carries one."""
    details = error.args[0] if error.args else None
    return details.get("C") if isinstance(details, dict) else None


def _configure(connection: Any) -> Any:
    """Session settings every pooled connection gets (see MAX_PREPARED_PER_CONNECTION)."""
    _execute_simple(connection, "SET plan_cache_mode = force_custom_plan")
    return connection


def _operation(sql: str) -> str:
    """The statement's first keyword (``SELECT``, ``WITH``, ``BEGIN``), for its span."""
    head = sql.lstrip()[:12].split(None, 1)
    return head[0].upper() if head else ""


# Statements that may change rows: run alone under a commit hook, they get a
# transaction of their own so the hook sees them (shared.db.commit_hooks).
_WRITES = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "WITH"})


def _statement_span(sql: str, protocol: str, round_trips: int) -> Any:
    """The span of one statement (see shared/tracing.py, ``ragline.db.statement``)."""
    if not tracing.enabled():
        return tracing.span("ragline.db.statement")  # a no-op
    return tracing.tracer.start_as_current_span(
        "ragline.db.statement",
        attributes={
            "db.system.name": "postgresql",
            "db.operation.name": _operation(sql),
            "ragline.db.protocol": protocol,
            "ragline.db.prepared": False,
            "ragline.db.round_trips": round_trips,
        },
    )


def _execute_simple(connection: Any, sql: str) -> Any:
    """A statement without parameters: the simple query protocol, one round trip."""
    with _statement_span(sql, "simple", 1):
        return connection.execute_simple(sql)


class Session:
    """A connection checked out of the pool; runs statements with named parameters."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def _execute(self, sql: str, stream: Any, params: dict[str, Any]) -> Any:
        if not params and stream is None:
            return _execute_simple(self._connection, sql)
        if stream is not None:
            # COPY with a stream: an unnamed statement, parse, describe and execute (each
            # followed by a sync), three round trips.
            with _statement_span(sql, "unnamed", 3):
                statement, make_values = _statement(sql)
                return self._connection.execute_unnamed(
                    statement, make_values(params), stream=stream
                )
        with _statement_span(sql, "prepared", 1) as span:
            return _execute_prepared(self._connection, sql, params, span)

    def run(self, sql: str, stream: Any = None, **params: Any) -> list[Row]:
        """Run ``sql`` with ``:name`` parameters and return all rows (empty if none).

        Args:
            sql: The statement; parameters are written ``:name``.
            stream: A file-like object for ``COPY ... FROM STDIN`` / ``TO STDOUT``.
            **params: Values for the named parameters.
        """
        return list(self._execute(sql, stream, params).rows or [])

    def one(self, sql: str, **params: Any) -> Row | None:
        """Run ``sql`` and return its first row, or None."""
        rows = self.run(sql, **params)
        return rows[0] if rows else None

    def scalar(self, sql: str, **params: Any) -> Any:
        """Run ``sql`` and return the first column of its first row, or None."""
        row = self.one(sql, **params)
        return row[0] if row else None

    def scalars(self, sql: str, **params: Any) -> list[Any]:
        """Run ``sql`` (a statement of one column) and return that column's values.

        Raises:
            ValueError: The statement returns more than one column.
        """
        context = self._execute(sql, None, params)
        if len(context.columns or ()) > 1:
            raise ValueError(f"scalars() needs one column, got {len(context.columns or ())}")
        return [row[0] for row in context.rows or []]

    def records(self, record: type[RecordT], sql: str, **params: Any) -> list[RecordT]:
        """Run ``sql`` and map each row to ``record`` by column name.

        Args:
            record: A dataclass whose fields are named as the statement's columns.
            sql: The statement; parameters are written ``:name``.
            **params: Values for the named parameters.

        Raises:
            ValueError: The statement's columns are not exactly the record's fields.
        """
        context = self._execute(sql, None, params)
        rows = context.rows or []
        if not rows:
            return []
        names = tuple(column["name"] for column in context.columns or ())
        _check_columns(record, names)
        return [record(**dict(zip(names, row, strict=True))) for row in rows]

    def record(self, record: type[RecordT], sql: str, **params: Any) -> RecordT | None:
        """Run ``sql`` and map its first row to ``record`` by column name, or None."""
        found = self.records(record, sql, **params)
        return found[0] if found else None

    @contextlib.contextmanager
    def transaction(
        self, *, read_only: bool = False, settings: Mapping[str, str | int] | None = None
    ) -> Iterator[Session]:
        """Run the block in a transaction: commit on success, roll back on error.

        A commit hook installed for the current context
        (:func:`shared.db.commit_hooks.before_commit`) runs in the transaction first,
        unless it is read-only.

        Args:
            read_only: ``BEGIN READ ONLY``: the server refuses any write, so no commit
                hook has anything to record.
            settings: ``SET LOCAL`` each name to its value for this transaction, sent
                with ``BEGIN`` in the same round trip. Names and values are code's own
                constants (identifiers and numbers), never a caller's text.
        """
        _execute_simple(self._connection, _begin_sql(read_only, settings or {}))
        try:
            yield self
        except BaseException:
            _execute_simple(self._connection, "ROLLBACK")
            raise
        hook = None if read_only else current_hook()
        if hook is not None:
            try:
                hook(self)
            except BaseException:
                _execute_simple(self._connection, "ROLLBACK")
                raise
        _execute_simple(self._connection, "COMMIT")


_SETTING_NAME = re.compile(r"[a-z_]+(\.[a-z_]+)?")
_SETTING_VALUE = re.compile(r"[A-Za-z0-9_.]+")


def _begin_sql(read_only: bool, settings: Mapping[str, str | int]) -> str:
    """``BEGIN`` (read-only if asked) and a ``SET LOCAL`` per setting, one simple query."""
    parts = ["BEGIN READ ONLY" if read_only else "BEGIN"]
    for name, value in settings.items():
        if not _SETTING_NAME.fullmatch(name) or not _SETTING_VALUE.fullmatch(str(value)):
            raise ValueError(f"not a setting this code sets: {name} = {value!r}")
        parts.append(f"SET LOCAL {name} = '{value}'")
    return "; ".join(parts)


@functools.lru_cache(maxsize=256)
def _record_fields(record: type) -> frozenset[str]:
    if not is_dataclass(record):
        raise TypeError(f"{record.__name__} is not a dataclass")
    return frozenset(field.name for field in fields(record) if field.init)


def _check_columns(record: type, names: tuple[str, ...]) -> None:
    """Fail loudly when a statement's columns and a record's fields disagree."""
    expected = _record_fields(record)
    if len(set(names)) != len(names) or set(names) != expected:
        missing = sorted(expected - set(names))
        extra = sorted(set(names) - expected)
        raise ValueError(
            f"columns do not match {record.__name__}: missing {missing}, unexpected {extra}"
        )


class Database:
    """A thread-safe pool of connections made by ``factory`` (at most ``size`` open)."""

    def __init__(self, factory: ConnectionFactory, size: int = 4) -> None:
        self._factory = factory
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """Check a connection out for the block (autocommit unless a transaction is opened)."""
        self._slots.acquire()
        connection = None
        try:
            try:
                connection = self._idle.get_nowait()
            except queue.Empty:
                connection = _configure(self._factory())
            yield Session(connection)
        except Exception as error:
            if connection is not None and _is_broken(error):
                _close_quietly(connection)
                connection = None
            elif connection is not None:
                # A failed statement may leave an aborted transaction behind.
                try:
                    _execute_simple(connection, "ROLLBACK")
                except Exception:
                    _close_quietly(connection)
                    connection = None
            raise
        finally:
            if connection is not None:
                self._idle.put(connection)
            self._slots.release()

    @contextlib.contextmanager
    def transaction(
        self, *, read_only: bool = False, settings: Mapping[str, str | int] | None = None
    ) -> Iterator[Session]:
        """Check a connection out and run the block in one transaction.

        ``read_only`` and ``settings`` as :meth:`Session.transaction`.
        """
        with (
            self.session() as session,
            session.transaction(read_only=read_only, settings=settings),
        ):
            yield session

    def _alone(self, sql: str) -> contextlib.AbstractContextManager[Session]:
        """Where one statement runs: autocommit, or a transaction for a hook to see.

        Under a commit hook, a statement that may change rows runs in a transaction of
        its own, so the hook writes with it.
        """
        if current_hook() is not None and _operation(sql) in _WRITES:
            return self.transaction()
        return self.session()

    def run(self, sql: str, **params: Any) -> list[Row]:
        """Run one statement on a pooled connection (autocommit)."""
        with self._alone(sql) as session:
            return session.run(sql, **params)

    def one(self, sql: str, **params: Any) -> Row | None:
        """Run one statement and return its first row, or None."""
        with self._alone(sql) as session:
            return session.one(sql, **params)

    def scalar(self, sql: str, **params: Any) -> Any:
        """Run one statement and return the first column of its first row, or None."""
        with self._alone(sql) as session:
            return session.scalar(sql, **params)

    def scalars(self, sql: str, **params: Any) -> list[Any]:
        """Run one statement of one column and return that column's values."""
        with self._alone(sql) as session:
            return session.scalars(sql, **params)

    def records(self, record: type[RecordT], sql: str, **params: Any) -> list[RecordT]:
        """Run one statement and map its rows to ``record`` by column name."""
        with self._alone(sql) as session:
            return session.records(record, sql, **params)

    def record(self, record: type[RecordT], sql: str, **params: Any) -> RecordT | None:
        """Run one statement and map its first row to ``record`` by column name, or None."""
        with self._alone(sql) as session:
            return session.record(record, sql, **params)

    def ping(self) -> None:
        """One round trip to the server (raises if it cannot be reached)."""
        self.scalar("SELECT 1")

    def close(self) -> None:
        """Close every idle connection."""
        while True:
            try:
                _close_quietly(self._idle.get_nowait())
            except queue.Empty:
                return


def _is_broken(error: Exception) -> bool:
    import pg8000.exceptions

    if isinstance(error, pg8000.exceptions.InterfaceError):
        return True
    text = str(error).lower()
    return any(hint in text for hint in _BROKEN_HINTS)


def _close_quietly(connection: Any) -> None:
    with contextlib.suppress(Exception):
        connection.close()


def url_connection_factory(url: str, password: str = "") -> ConnectionFactory:
    """Connections to a ``postgresql://`` URL; ``?host=/dir`` means a Unix socket in ``/dir``.

    Args:
        url: e.g. ``postgresql://postgres@/ragline?host=/data/pg`` or
            ``postgresql://user:pw@localhost:5432/ragline``.
        password: Used when the URL has none (resolved from Secret Manager upstream).
    """
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    kwargs: dict[str, Any] = {
        "user": unquote(parsed.username or "postgres"),
        "database": (parsed.path or "/postgres").lstrip("/") or "postgres",
        "password": unquote(parsed.password) if parsed.password else (password or None),
        "application_name": "ragline",
    }
    socket_dir = query.get("host", [""])[0]
    port = parsed.port or 5432
    if socket_dir.startswith("/"):
        kwargs["unix_sock"] = f"{socket_dir}/.s.PGSQL.{port}"
    else:
        kwargs["host"] = parsed.hostname or "localhost"
        kwargs["port"] = port

    def connect() -> Any:
        import pg8000.native

        return pg8000.native.Connection(**kwargs)

    return connect


def cloudsql_connection_factory(settings: Settings) -> ConnectionFactory:
    """Connections to Cloud SQL through the connector, with IAM auth unless a password is set."""
    from shared.secrets import resolve_secret

    password = resolve_secret(settings.db_password) if settings.db_password else ""
    state: dict[str, Any] = {}

    def connect() -> Any:
        from google.cloud.sql.connector import Connector

        connector = state.get("connector")
        if connector is None:
            connector = state["connector"] = Connector(refresh_strategy="lazy")
        kwargs: dict[str, Any] = {"user": settings.db_user, "db": settings.db_name}
        if password:
            kwargs["password"] = password
        else:
            kwargs["enable_iam_auth"] = True
        return connector.connect(settings.cloudsql_instance, "pg8000", **kwargs)

    return connect


def open_database(settings: Settings) -> Database:
    """A pool for the database the settings name: Cloud SQL, or a ``postgresql://`` URL.

    Raises:
        RuntimeError: The settings name no database.
    """
    if settings.cloudsql_instance:
        factory = cloudsql_connection_factory(settings)
    elif settings.database_url:
        factory = url_connection_factory(settings.database_url)
    else:
        raise RuntimeError(
            "No database configured: set RAGLINE_DATABASE_URL (local) or "
            "RAGLINE_CLOUDSQL_INSTANCE (Cloud SQL)."
        )
    return Database(factory, size=settings.db_pool_size)


def vector_literal(values: Sequence[float]) -> str:
    """Render a vector as pgvector's text form, e.g. ``[0.1,0.2]``."""
    return "[" + ",".join(f"{value:.7g}" for value in values) + "]"


# COPY's binary format: signature, flags, header extension length; and the trailer.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)


def copy_id_vectors(ids: Sequence[int], vectors: Sequence[Sequence[float]]) -> bytes:
    """``(bigint, vector)`` rows in COPY's binary format, for ``COPY ... (FORMAT binary)``.

    pg8000 sends every parameter as text, and a vector's text form costs a float
    formatting per element here and a parse per element in the server (and with 7
    digits it is not even exactly the float32 given). COPY's binary format carries each
    element as its 4 IEEE bytes, as pgvector's ``vector_recv`` reads them: int16
    dimensions, int16 unused, then big-endian float4s. It works on both pg8000 front
    ends (``Session.run(..., stream=...)``), unlike registering a binary adapter.

    Raises:
        ValueError: ``ids`` and ``vectors`` differ in length, or a vector is empty.
    """
    if len(ids) != len(vectors):
        raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
    parts = [_COPY_HEADER]
    for chunk_id, vector in zip(ids, vectors, strict=True):
        dim = len(vector)
        if not 1 <= dim <= 16000:
            raise ValueError(f"a vector must have 1 to 16000 dimensions, not {dim}")
        # Two fields: an 8-byte bigint, then the vector (4 header bytes + 4 per element).
        parts.append(struct.pack(f"!hiqihh{dim}f", 2, 8, chunk_id, 4 + 4 * dim, dim, 0, *vector))
    parts.append(_COPY_TRAILER)
    return b"".join(parts)
