"""A per-request hook that runs inside a transaction just before it commits.

The audit log (``shared.api.audit``) records a change in the transaction that makes it
without every store function taking part: the HTTP layer installs a hook for the
request (:func:`before_commit`), and :meth:`shared.db.Session.transaction` calls it
before each ``COMMIT`` in that context. The hook decides whether to write (for the
audit log: once, in the first transaction that changed a row). A hook that has nothing
left to do says so (``pending``): from then on statements run as if none were installed,
without the transaction a lone write would otherwise get for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.db.connection import Session

CommitHook = Callable[["Session"], None]


@dataclass(frozen=True)
class _Installed:
    hook: CommitHook
    pending: Callable[[], bool]


_hook: ContextVar[_Installed | None] = ContextVar("ragline_commit_hook", default=None)


def _always() -> bool:
    return True


def current_hook() -> CommitHook | None:
    """The hook installed for the current context, if any and still pending."""
    installed = _hook.get()
    if installed is None or not installed.pending():
        return None
    return installed.hook


@contextlib.contextmanager
def before_commit(hook: CommitHook, pending: Callable[[], bool] = _always) -> Iterator[None]:
    """Run ``hook(session)`` before every commit of a transaction inside the block.

    Args:
        hook: Called with the session before each commit, while ``pending``.
        pending: Whether the hook still has something to do; once False, it is skipped.
    """
    token = _hook.set(_Installed(hook, pending))
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
