"""``dead_letter``: messages that ran out of delivery attempts on any pipeline topic."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from shared.envelopes import delivery_attempt, pubsub_payload
from shared.invocation import event_target
from shared.log import configure_logging
from shared.models import ParseRequested
from shared.pipeline.steps import dead_letter as fail_dead_lettered
from shared.runtime import get_runtime

configure_logging()


@functions_framework.cloud_event
@event_target("dead_letter")
def dead_letter(cloud_event: CloudEvent) -> None:
    """Fail the version the message was about, with its last recorded error."""
    # Every pipeline message names its version; ParseRequested is the smallest model
    # that reads just that field (extra fields are ignored).
    message = pubsub_payload(cloud_event, ParseRequested)
    if message is None:
        return
    fail_dead_lettered(get_runtime(), message.version_id, delivery_attempt(cloud_event))
