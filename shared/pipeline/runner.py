"""Runs a pipeline step with the error contract of DESIGN.md.

- :class:`~shared.errors.PermanentError`: record it on the version, acknowledge.
- anything else: remember it as the version's last error, then re-raise so the platform
  retries with backoff (and eventually dead-letters the message).
- an event older than the maximum age: fail the version instead of retrying forever.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable

from shared.config import get_settings
from shared.db import Database
from shared.errors import PermanentError
from shared.pipeline.steps import fail_and_announce
from shared.pipeline.versions import record_transient_error

log = logging.getLogger(__name__)


def run_step(
    database: Database,
    step: str,
    version_id: str,
    work: Callable[[], object],
    *,
    event_time: dt.datetime | None = None,
) -> None:
    """Run ``work`` for ``version_id`` under the pipeline's error contract."""
    max_age = get_settings().max_event_age_s
    if event_time is not None:
        age = (dt.datetime.now(dt.UTC) - event_time).total_seconds()
        if age > max_age:
            fail_and_announce(
                database,
                version_id,
                "event_expired",
                f"{step}: gave up on an event {int(age)} s old (limit {max_age} s)",
            )
            return
    extra = {"version_id": version_id, "step": step}
    try:
        work()
    except PermanentError as error:
        log.warning("%s failed permanently: %s", step, error, extra=extra)
        fail_and_announce(database, version_id, error.code, f"{step}: {error.message}")
    except Exception as error:
        log.warning("%s failed, will retry: %s", step, error, extra=extra)
        # Best effort: if the database itself is down, the retry still happens.
        with contextlib.suppress(Exception):
            record_transient_error(database, version_id, step, error)
        raise
