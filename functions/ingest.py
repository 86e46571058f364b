"""``ingest``: GCS object finalized/deleted events on the uploads bucket."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from shared.envelopes import storage_object
from shared.invocation import event_target
from shared.log import configure_logging
from shared.pipeline.ingest import ingest_deleted, ingest_finalized
from shared.runtime import get_runtime

configure_logging()


@functions_framework.cloud_event
@event_target("ingest")
def ingest(cloud_event: CloudEvent) -> None:
    """Map the object to a knowledge base and document, then start or stop its pipeline."""
    obj = storage_object(cloud_event)
    if obj is None:
        return
    if str(cloud_event["type"]).endswith(".deleted"):
        ingest_deleted(get_runtime(), obj)
    else:
        ingest_finalized(get_runtime(), obj)
