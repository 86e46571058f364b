"""PostgreSQL access: connections, a tiny pool, transactions and migrations."""

from shared.db.connection import Database, Row, Session, open_database

__all__ = ["Database", "Row", "Session", "open_database"]
