"""A per-request hook that runs inside a transaction just before it commits.

The audit log (``shared.api.audit``) records a change in the transaction that makes it
without every store function taking part: the HTTP layer installs a hook for the
request (:func:`before_commit`), and :meth:`shared.db.Session.transaction` calls it
before each ``COMMIT`` in that context. The hook decides whether to write (for the
audit log: once, in the first transaction that changed a row).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.db.connection import Session

CommitHook = Callable[["Session"], None]

_hook: ContextVar[CommitHook | None] = ContextVar("ragline_commit_hook", default=None)


def current_hook() -> CommitHook | None:
    """The hook installed for the current context, if any."""
    return _hook.get()


@contextlib.contextmanager
def before_commit(hook: CommitHook) -> Iterator[None]:
    """Run ``hook(session)`` before every commit of a transaction inside the block."""
    token = _hook.set(hook)
    try:
        yield
    finally:
        _hook.reset(token)


@contextlib.contextmanager
def suspended() -> Iterator[None]:
    """Run the block without the context's hook (bookkeeping that is not the change)."""
    token = _hook.set(None)
    try:
        yield
    finally:
        _hook.reset(token)
