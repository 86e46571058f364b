"""The CTE that commits a statement's own transaction without waiting for the disk.

``WITH async_commit AS (...)`` sets ``synchronous_commit = off`` with
``set_config(..., is_local => true)`` inside the statement, so it costs no round trip
and applies to that statement's transaction only; the pooled connection keeps the
server default for everything else. The statement must read the CTE (``FROM
async_commit``) or PostgreSQL never evaluates it.

What it risks is bounded: if the *database server* crashes (not our process), the
transactions committed in the last 3 x ``wal_writer_delay`` (600 ms by default) may be
lost; nothing is corrupted (recovery replays the WAL in order to a consistent state),
and any later synchronous commit flushes the WAL up to itself. PostgreSQL's manual
("Asynchronous Commit") calls this an acceptable trade-off as long as nothing outside
the database acts on the assumption that the transaction was remembered. Callers say
why their writes can afford it.
"""

ASYNC_COMMIT = "async_commit AS (SELECT set_config('synchronous_commit', 'off', true))"
