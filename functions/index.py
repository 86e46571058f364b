"""``index``: Pub/Sub push messages from the ``ragline-index`` topic."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from shared.db import get_database
from shared.envelopes import event_time, pubsub_payload
from shared.log import configure_logging
from shared.models import IndexRequested
from shared.pipeline.runner import run_step
from shared.pipeline.steps import index_version

configure_logging()


@functions_framework.cloud_event
def index(cloud_event: CloudEvent) -> None:
    """Make the embedded version the active one and mark it ready."""
    message = pubsub_payload(cloud_event, IndexRequested)
    if message is None:
        return
    database = get_database()
    run_step(
        database,
        "index",
        message.version_id,
        lambda: index_version(database, message.version_id),
        event_time=event_time(cloud_event),
    )
