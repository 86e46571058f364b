"""Identifier helpers."""

from __future__ import annotations

import uuid


def is_uuid(value: object) -> bool:
    """True if ``value`` is a string holding a UUID (ids in paths and messages)."""
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
