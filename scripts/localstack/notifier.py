"""Stands in for Eventarc: turns bucket changes into GCS CloudEvents.

The GCS emulator sends no notifications, so the bucket is polled: a new generation of
an object is ``finalized``, a vanished object is ``deleted``. On start every existing
object is reported once; ingest is idempotent per generation, so this only resumes
anything a previous run left unfinished.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from scripts.localstack.dispatcher import Dispatcher
from shared.storage import ObjectStore

log = logging.getLogger(__name__)

EventSink = Callable[[str, dict[str, Any]], int]


def object_resource(blob: Any) -> dict[str, Any]:
    """The object resource JSON a GCS event carries."""
    return {
        "bucket": blob.bucket.name,
        "name": blob.name,
        "generation": str(blob.generation),
        "size": str(blob.size or 0),
        "md5Hash": blob.md5_hash,
        "contentType": blob.content_type,
        "metadata": dict(blob.metadata or {}),
    }


class BucketNotifier:
    """Polls a bucket and delivers finalize/delete events with retries."""

    def __init__(
        self,
        bucket: str,
        sink: EventSink,
        dispatcher: Dispatcher,
        objects: ObjectStore,
        *,
        interval_s: float = 0.5,
        max_attempts: int = 5,
    ) -> None:
        self.bucket = bucket
        self._sink = sink
        self._objects = objects
        self._dispatcher = dispatcher
        self._interval_s = interval_s
        self._max_attempts = max_attempts
        self._seen: dict[str, tuple[int, dict[str, Any]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bucket-notifier", daemon=True)

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        self._thread.join(timeout=5)

    def poll_once(self) -> int:
        """Compare the bucket with the last listing and emit events; return how many."""
        blobs = list(self._objects.client.list_blobs(self.bucket))
        current = {blob.name: (int(blob.generation), object_resource(blob)) for blob in blobs}
        emitted = 0
        for name, (generation, resource) in current.items():
            previous = self._seen.get(name)
            if previous is None or previous[0] != generation:
                self._emit("finalized", resource)
                emitted += 1
        for name, (_generation, resource) in self._seen.items():
            if name not in current:
                self._emit("deleted", resource)
                emitted += 1
        self._seen = current
        return emitted

    def _emit(self, event_type: str, resource: dict[str, Any]) -> None:
        def attempt(_number: int) -> bool:
            return 200 <= self._sink(event_type, resource) < 300

        self._dispatcher.submit(
            f"gcs/{event_type}/{resource['name']}#{resource['generation']}",
            attempt,
            max_attempts=self._max_attempts,
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("polling gs://%s failed", self.bucket)
            self._stop.wait(self._interval_s)
