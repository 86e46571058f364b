"""``webhooks``: Pub/Sub push messages from the ``ragline-lifecycle`` topic."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from shared.envelopes import pubsub_payload
from shared.invocation import event_target
from shared.log import configure_logging
from shared.models import DocumentLifecycleEvent
from shared.pipeline.webhooks import fan_out
from shared.runtime import get_runtime

configure_logging()


@functions_framework.cloud_event
@event_target("webhooks")
def webhooks(cloud_event: CloudEvent) -> None:
    """Enqueue one delivery task per webhook subscribed to the event (named, so once)."""
    event = pubsub_payload(cloud_event, DocumentLifecycleEvent)
    if event is None:
        return
    fan_out(get_runtime(), event)
