r"""The one rule for control characters in request text: rejected, never stored.

Every text a request carries (path segments, query parameters, header values, JSON
keys and strings at any depth, form fields) is checked here before a handler runs. A
C0 control character other than tab, line feed and carriage return, DEL, or a lone
surrogate (JSON's ``"\ud800"``) gets a 400 ``invalid_input`` naming the field:
PostgreSQL cannot store NUL at all, and the others are never meant as text. Rejecting,
rather than stripping, means what is stored is exactly what the client sent.
File names are the exception: they come from a client's file system, and the upload
routes replace such characters instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from shared.errors import InvalidInputError

FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
# A field's name as shown in a message: long or hostile names are cut short.
_SHOWN_NAME_CHARS = 60


def check_text(value: str, field: str) -> str:
    """``value`` itself, if no character of it is forbidden.

    Args:
        value: The text a request carries.
        field: What it is, for the error message (e.g. ``question``, ``query parameter q``).

    Returns:
        ``value`` unchanged.

    Raises:
        InvalidInputError: ``invalid_input``, naming the field and the character.
    """
    found = FORBIDDEN.search(value)
    if found is not None:
        raise InvalidInputError(
            f"{shown(field)} contains the control character U+{ord(found.group()):04X};"
            " text may not hold control characters other than tab and line breaks",
            code="invalid_input",
        )
    return value


def check_json(value: Any, field: str = "body") -> Any:
    """``value`` itself, if every key and string in it (at any depth) passes :func:`check_text`.

    Args:
        value: Parsed JSON.
        field: Where it is, for the error message; nested fields extend it (``body.filters``).

    Returns:
        ``value`` unchanged.

    Raises:
        InvalidInputError: ``invalid_input``, naming the first offending field.
    """
    if isinstance(value, str):
        check_text(value, field)
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{field}.{check_text(str(key), f'a key of {field}')}"
            check_json(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_json(item, f"{field}[{index}]")
    return value


def check_pairs(pairs: Iterable[tuple[str, str]], kind: str) -> None:
    """Check names and values of query parameters, headers or path arguments.

    Args:
        pairs: ``(name, value)`` pairs.
        kind: What they are (``query parameter``, ``header``, ``path segment``).

    Raises:
        InvalidInputError: ``invalid_input``, naming the first offending one.
    """
    for name, value in pairs:
        check_text(name, f"a {kind} name")
        check_text(value, f"{kind} {name}")


def shown(field: str) -> str:
    """A field's name fit for a message: at most a few dozen characters."""
    if len(field) <= _SHOWN_NAME_CHARS:
        return field
    return field[: _SHOWN_NAME_CHARS - 1] + "…"
