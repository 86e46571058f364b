"""Stage leases: an attempt holds its version's stage while it works, and says so.

A step that claims a stage (:func:`shared.pipeline.versions.claim_stage`) holds it for
``lease_s`` seconds. While it works, a :class:`Heartbeat` renews the lease every third
of that, so a long parse keeps its stage however long it takes, and a duplicate message
arriving meanwhile is dropped instead of doing the work twice. An attempt that dies (a
killed process, a lost instance) stops renewing: its lease expires within ``lease_s``
seconds, and the next delivery of its message, or the sweeper's re-drive, takes over.

The relations the settings keep (:class:`shared.config.Settings`): heartbeat interval
(``lease_s / 3``) < ``lease_s`` (at least the longest step's function timeout, so even
a heartbeat starved of CPU cannot let a live attempt lose its stage) < ``stall_after_s``
(the sweeper re-drives only versions with no live lease and no progress for that long)
< the re-drive window (``stall_after_s`` times ``max_sweeps``, after which a stage that
keeps losing its attempts fails as stalled).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import uuid
from types import TracebackType

from shared.db import Database
from shared.store import versions as version_store

log = logging.getLogger(__name__)


def new_holder(stage: str) -> str:
    """A fresh id for one attempt at ``stage`` (what its lease records as the holder)."""
    return f"{stage}:{uuid.uuid4().hex}"


class Heartbeat:
    """Renews ``holder``'s lease on a version every ``lease_s / 3`` seconds while open.

    Use as a context manager around an attempt's work. Renewal failures are logged and
    retried at the next beat: the lease still has two beats' worth of time left.
    """

    def __init__(self, database: Database, version_id: str, holder: str, lease_s: int) -> None:
        self._database = database
        self._version_id = version_id
        self._holder = holder
        self._lease_s = lease_s
        self._stop = threading.Event()
        # The beat runs in the attempt's context: its log lines carry the attempt's trace.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._beat,), name=f"lease-{holder}", daemon=True
        )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        interval = max(self._lease_s / 3, 0.05)
        while not self._stop.wait(interval):
            try:
                held = version_store.renew_lease(
                    self._database, self._version_id, self._holder, self._lease_s
                )
            except Exception:
                log.warning("renewing the lease of %s failed", self._version_id, exc_info=True)
                continue
            if not held:
                # Finished (the stage moved on) or taken over after the lease ran out:
                # stop renewing; the work still completes idempotently.
                log.info("%s no longer holds %s", self._holder, self._version_id)
                return
