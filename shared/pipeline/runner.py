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
import time
from collections.abc import Callable
from typing import Any

from shared import trace_context
from shared.envelopes import event_time, pubsub_payload
from shared.errors import PermanentError
from shared.models import ParseRequested
from shared.pipeline.steps import fail_and_announce
from shared.pipeline.versions import record_transient_error
from shared.runtime import Runtime

log = logging.getLogger(__name__)


def run_step(
    runtime: Runtime,
    step: str,
    version_id: str,
    work: Callable[[], object],
    *,
    event_time: dt.datetime | None = None,
) -> None:
    """Run ``work`` for ``version_id`` under the pipeline's error contract."""
    database = runtime.database
    max_age = runtime.settings.max_event_age_s
    if event_time is not None:
        age = (dt.datetime.now(dt.UTC) - event_time).total_seconds()
        if age > max_age:
            fail_and_announce(
                runtime,
                version_id,
                "event_expired",
                f"{step}: gave up on an event {int(age)} s old (limit {max_age} s)",
            )
            return
    trace_context.bind(version_id=version_id)
    extra = {"version_id": version_id, "step": step}
    started = time.monotonic()
    outcome = "retry"
    try:
        # A step returns False when it had nothing to do (a redelivery, a version gone or
        # past the stage): its line says so, apart from the attempts that did the work.
        outcome = "skipped" if work() is False else "ok"
    except PermanentError as error:
        outcome = "failed"
        log.warning("%s failed permanently: %s", step, error, extra=extra)
        fail_and_announce(runtime, version_id, error.code, f"{step}: {error.message}")
    except Exception as error:
        log.warning("%s failed, will retry: %s", step, error, extra=extra)
        # Best effort: if the database itself is down, the retry still happens.
        with contextlib.suppress(Exception):
            record_transient_error(database, version_id, step, error)
        raise
    finally:
        # One line per attempt: the stage latency metric (monitoring.tf) reads it.
        duration_ms = int((time.monotonic() - started) * 1000)
        log.info(
            "step finished",
            extra={**extra, "outcome": outcome, "duration_ms": duration_ms},
        )


def run_pubsub_step(
    runtime: Runtime,
    cloud_event: Any,
    step: str,
    work: Callable[[Runtime, str], object],
) -> None:
    """Unwrap a pipeline message from a Pub/Sub CloudEvent and run ``work`` on its version.

    Every pipeline message names its version, so :class:`ParseRequested` (which reads
    just that field, ignoring the rest) validates them all; a malformed one is dropped.
    """
    message = pubsub_payload(cloud_event, ParseRequested)
    if message is None:
        return
    run_step(
        runtime,
        step,
        message.version_id,
        lambda: work(runtime, message.version_id),
        event_time=event_time(cloud_event),
    )
