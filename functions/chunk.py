"""``chunk``: Pub/Sub push messages from the ``ragline-chunk`` topic."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from shared.db import get_database
from shared.envelopes import event_time, pubsub_payload
from shared.log import configure_logging
from shared.models import ChunkRequested
from shared.pipeline.runner import run_step
from shared.pipeline.steps import chunk_version

configure_logging()


@functions_framework.cloud_event
def chunk(cloud_event: CloudEvent) -> None:
    """Split the parsed text into chunks and enqueue their embed tasks."""
    message = pubsub_payload(cloud_event, ChunkRequested)
    if message is None:
        return
    database = get_database()
    run_step(
        database,
        "chunk",
        message.version_id,
        lambda: chunk_version(database, message.version_id),
        event_time=event_time(cloud_event),
    )
