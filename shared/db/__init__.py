"""PostgreSQL access: connections, a tiny pool, transactions and migrations."""

from shared.db.connection import Database, Row, get_database, set_database

__all__ = ["Database", "Row", "get_database", "set_database"]
