"""``index``: Pub/Sub push messages from the ``ragline-index`` topic."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from shared.invocation import event_target
from shared.log import configure_logging
from shared.pipeline.runner import run_pubsub_step
from shared.pipeline.steps import index_version
from shared.runtime import get_runtime

configure_logging()


@functions_framework.cloud_event
@event_target("index")
def index(cloud_event: CloudEvent) -> None:
    """Make the embedded version the active one and mark it ready."""
    run_pubsub_step(get_runtime(), cloud_event, "index", index_version)
