"""Versioned schema migrations: ``shared/db/migrations/NNNN_name.sql``, applied in order.

Each file runs in its own transaction under an advisory lock, so two instances starting
at once cannot apply the same migration twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from shared.db.connection import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_LOCK_KEY = 0x7261676C  # "ragl"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    path: Path


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Return the migrations in ``directory``, ordered by version."""
    found = []
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), path))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions in {directory}")
    return found


def migrate(database: Database, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply every migration not yet applied; return the ones applied now."""
    applied_now = []
    with database.session() as session:
        session.run("SELECT pg_advisory_lock(:key)", key=_LOCK_KEY)
        try:
            session.run(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in session.run("SELECT version FROM schema_migrations")}
            for migration in discover(directory):
                if migration.version in done:
                    continue
                with session.transaction():
                    session.run(migration.path.read_text())
                    session.run(
                        "INSERT INTO schema_migrations (version, name) VALUES (:v, :n)",
                        v=migration.version,
                        n=migration.name,
                    )
                applied_now.append(migration)
        finally:
            session.run("SELECT pg_advisory_unlock(:key)", key=_LOCK_KEY)
    return applied_now


APP_ROLE = "ragline_app"


def grant_app_role(database: Database, users: list[str]) -> list[str]:
    """Make each database user a member of the functions' role; return those granted.

    Cloud SQL IAM users start with no privileges; the role (migration 0003) holds the
    table privileges the functions need. Granting is idempotent.
    """
    granted = []
    with database.session() as session:
        existing = {row[0] for row in session.run("SELECT rolname FROM pg_roles")}
        for user in users:
            user = user.strip()
            if not user:
                continue
            if user not in existing:
                raise RuntimeError(f"database user {user!r} does not exist")
            quoted = '"' + user.replace('"', '""') + '"'
            session.run(f"GRANT {APP_ROLE} TO {quoted}")
            granted.append(user)
    return granted
