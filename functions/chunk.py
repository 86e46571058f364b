"""``chunk``: Pub/Sub push messages from the ``ragline-chunk`` topic."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from shared.invocation import event_target
from shared.log import configure_logging
from shared.pipeline.runner import run_pubsub_step
from shared.pipeline.steps import chunk_version
from shared.runtime import get_runtime

configure_logging()


@functions_framework.cloud_event
@event_target("chunk")
def chunk(cloud_event: CloudEvent) -> None:
    """Split the parsed text into chunks and enqueue their embed tasks."""
    run_pubsub_step(get_runtime(), cloud_event, "chunk", chunk_version)
