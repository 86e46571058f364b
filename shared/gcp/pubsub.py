"""Publish pipeline messages to Google Cloud Pub/Sub.

:class:`PubSubPublisher` implements :class:`shared.events.Publisher`. The Pub/Sub
client library is heavy (gRPC, protobuf, OpenTelemetry hooks), so it is imported and
the client created on the first publish rather than at module import: functions that
never publish (answer, manage) pay nothing for it at cold start.

``PUBSUB_EMULATOR_HOST`` is honoured by the client library itself (insecure channel,
anonymous credentials), so the same code runs against the emulator in tests.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from shared import trace_context
from shared.errors import TransientError
from shared.models import Message, message_attributes

if TYPE_CHECKING:
    # pubsub_v1 ships no type information, so import names from it directly
    # (``from google.cloud import pubsub_v1`` confuses mypy's namespace handling).
    from google.cloud.pubsub_v1 import PublisherClient

#: Seconds :meth:`PubSubPublisher.publish` waits for the broker to acknowledge a message.
DEFAULT_PUBLISH_TIMEOUT_S = 30.0


class PubSubPublisher:
    """Publishes :class:`~shared.models.Message` objects as JSON to Pub/Sub topics.

    Each publish blocks until Pub/Sub returns the message id (or the timeout passes),
    because a step must not acknowledge its own input before its output is durable:
    otherwise an instance shutdown between the two would lose the pipeline's next step.

    Args:
        project: Google Cloud project that owns the topics.
        client: A ready ``PublisherClient`` (tests pass one pointed at the emulator);
            by default one with low-latency settings is created on first publish.
        timeout_s: Total seconds to wait for one publish, retries included.
    """

    def __init__(
        self,
        project: str,
        client: PublisherClient | None = None,
        *,
        timeout_s: float = DEFAULT_PUBLISH_TIMEOUT_S,
    ) -> None:
        self._project = project
        self._client = client
        self._timeout_s = timeout_s
        # Functions frameworks may serve concurrent requests on threads (gen2
        # concurrency > 1); the lock makes sure only one client is ever created.
        self._client_lock = threading.Lock()

    @property
    def client(self) -> PublisherClient:
        """The Pub/Sub client, created on first use."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = _make_client(self._timeout_s)
        return self._client

    def topic_path(self, topic: str) -> str:
        """Return the full resource name of ``topic`` (a short name or a full path)."""
        if topic.startswith("projects/"):
            return topic
        return f"projects/{self._project}/topics/{topic}"

    def publish(self, topic: str, message: Message) -> str:
        """Publish ``message`` to ``topic`` and return its Pub/Sub message id.

        Args:
            topic: Topic short name (``ragline-parse``) or full resource name.
            message: The pipeline message; sent as its JSON, with
                :func:`shared.models.message_attributes` as attributes, and the
                current trace's ``traceparent`` (the next step continues the trace).

        Returns:
            The message id assigned by Pub/Sub.

        Raises:
            TransientError: Pub/Sub did not accept the message in time (unavailable,
                quota, deadline, missing topic or permission). The caller lets it
                propagate so the platform redelivers the step's input; the step is
                idempotent, so publishing again is safe.
        """
        # Imported here for the same cold-start reason as the client itself.
        from google.api_core import exceptions as api_exceptions
        from google.cloud.pubsub_v1.publisher import exceptions as publisher_exceptions

        data = message.model_dump_json().encode()
        attributes = {**message_attributes(message), **trace_context.propagation()}
        path = self.topic_path(topic)
        try:
            future = self.client.publish(path, data, **attributes)
            # The client's retry deadline equals our timeout; the small margin lets
            # the library report its own (more precise) error before we give up.
            return str(future.result(timeout=self._timeout_s + 5.0))
        except (
            api_exceptions.GoogleAPIError,
            publisher_exceptions.FlowControlLimitError,
            TimeoutError,
        ) as exc:
            raise TransientError(
                f"publishing {type(message).__name__} to {path} failed: {exc}"
            ) from exc


def _make_client(timeout_s: float) -> PublisherClient:
    """Create a publisher client tuned for a request-scoped serverless function."""
    from google.api_core import exceptions as api_exceptions
    from google.api_core import retry as api_retry
    from google.api_core.timeout import ConstantTimeout
    from google.cloud.pubsub_v1 import PublisherClient, types

    # A function publishes one or a few messages per invocation and then waits for
    # them, so batching only adds latency: flush after 1 ms, or at once when a
    # handful of messages (e.g. a fan-out) are queued.
    batch_settings = types.BatchSettings(max_messages=10, max_bytes=1_000_000, max_latency=0.001)
    # The library default retries Publish for up to 600 s, far beyond a function's
    # timeout; bound it so a stuck publish turns into a TransientError (and a
    # platform retry with backoff) while the instance is still alive.
    retry = api_retry.Retry(
        initial=0.1,
        maximum=5.0,
        multiplier=2.0,
        predicate=api_retry.if_exception_type(
            api_exceptions.Aborted,
            api_exceptions.Cancelled,
            api_exceptions.DeadlineExceeded,
            api_exceptions.InternalServerError,
            api_exceptions.ResourceExhausted,
            api_exceptions.ServiceUnavailable,
            api_exceptions.Unknown,
        ),
        timeout=timeout_s,
    )
    publisher_options = types.PublisherOptions(
        retry=retry, timeout=ConstantTimeout(min(timeout_s, 10.0))
    )
    return PublisherClient(batch_settings=batch_settings, publisher_options=publisher_options)
