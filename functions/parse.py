"""``parse``: Pub/Sub push messages from the ``ragline-parse`` topic."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from shared.invocation import event_target
from shared.log import configure_logging
from shared.pipeline.runner import run_pubsub_step
from shared.pipeline.steps import parse_version
from shared.runtime import get_runtime

configure_logging()


@functions_framework.cloud_event
@event_target("parse")
def parse(cloud_event: CloudEvent) -> None:
    """Parse the version's file and store its text in the work bucket."""
    run_pubsub_step(get_runtime(), cloud_event, "parse", parse_version)
