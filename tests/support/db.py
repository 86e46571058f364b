"""Database connections for tests that run on both pg8000 front ends."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import pg8000.dbapi


def dbapi_factory(url: str) -> Any:
    """Connections to the local stack's database through ``pg8000.dbapi``, the front end
    the Cloud SQL connector hands out (the local stack itself uses ``pg8000.native``)."""
    parsed = urlparse(url)
    socket_dir = parse_qs(parsed.query)["host"][0]

    def connect() -> Any:
        return pg8000.dbapi.connect(
            user="postgres",
            database=parsed.path.lstrip("/"),
            unix_sock=f"{socket_dir}/.s.PGSQL.5432",
        )

    return connect
