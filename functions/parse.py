"""``parse``: Pub/Sub push messages from the ``ragline-parse`` topic."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from shared.db import get_database
from shared.envelopes import event_time, pubsub_payload
from shared.log import configure_logging
from shared.models import ParseRequested
from shared.pipeline.runner import run_step
from shared.pipeline.steps import parse_version

configure_logging()


@functions_framework.cloud_event
def parse(cloud_event: CloudEvent) -> None:
    """Parse the version's file and store its text in the work bucket."""
    message = pubsub_payload(cloud_event, ParseRequested)
    if message is None:
        return
    database = get_database()
    run_step(
        database,
        "parse",
        message.version_id,
        lambda: parse_version(database, message.version_id),
        event_time=event_time(cloud_event),
    )
