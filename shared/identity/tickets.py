"""Stream tickets: what lets a browser's EventSource authenticate without a header.

``EventSource`` sends no ``Authorization`` header, and a long-lived credential must not
sit in a URL (logs, history, referrers keep URLs). So a signed-in caller asks for a
ticket for one stream path (``POST /v1/stream-tickets``) and opens
``<path>?ticket=<ticket>``. A ticket is 32 random bytes, valid for
:data:`TICKET_TTL_S` seconds, for that path only, and once: redeeming deletes it. The
database keeps only its SHA-256.
"""

from __future__ import annotations

import hashlib
import re
import secrets

TICKET_PARAM = "ticket"
TICKET_TTL_S = 60
# The streams a ticket can open (the only GET routes a browser reads with EventSource).
STREAM_PATHS = (
    re.compile(r"^/v1/ask/stream$"),
    re.compile(r"^/v1/documents/[0-9a-fA-F-]{36}/events$"),
)


def new_ticket() -> str:
    """A new random ticket."""
    return secrets.token_urlsafe(32)


def ticket_hash(ticket: str) -> bytes:
    """What the database keeps of a ticket."""
    return hashlib.sha256(ticket.encode()).digest()


def is_stream_path(path: str) -> bool:
    """True if a ticket may be issued for ``path``."""
    return any(pattern.match(path) for pattern in STREAM_PATHS)
