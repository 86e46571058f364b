"""In-process Pub/Sub and Cloud Tasks with push semantics.

The bus pushes each message to every subscription of its topic in the Pub/Sub push
body format, retries non-2xx with backoff, and after ``max_attempts`` republishes it to
the dead-letter topic, as a Pub/Sub dead-letter policy does. The task queue dedupes by
task name and POSTs the task body with Cloud Tasks' headers. Both carry the
publisher's ``traceparent`` as the real services do (an attribute in the push body, a
header on the task's request). Test knobs: deliver every
message twice, and add random delays so deliveries arrive out of order.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import logging
import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scripts.localstack.dispatcher import Dispatcher
from shared import trace_context
from shared.models import Message, message_attributes

log = logging.getLogger(__name__)

# Pushes a JSON body to a target and returns the HTTP status.
PushTarget = Callable[[dict[str, Any], dict[str, str]], int]


@dataclass
class Subscription:
    """A push subscription.

    ``dispatcher`` delivers its messages; by default the bus's own. Pub/Sub pushes each
    subscription on its own, so a backlog on one topic (parse) does not hold up
    deliveries of another (chunk, index): give each subscription its own dispatcher
    to get that.
    """

    name: str
    topic: str
    target: PushTarget
    dead_letter_topic: str | None = None
    dispatcher: Dispatcher | None = None


@dataclass
class DeliveryOptions:
    """How faithfully (or how adversarially) messages are delivered."""

    max_attempts: int = 5
    duplicate: bool = False  # deliver every message twice
    max_jitter_s: float = 0.0  # random extra delay per delivery, to reorder them


class LocalBus:
    """An in-process Pub/Sub: implements :class:`shared.events.Publisher`."""

    def __init__(self, dispatcher: Dispatcher, options: DeliveryOptions | None = None) -> None:
        self._dispatcher = dispatcher
        self.options = options or DeliveryOptions()
        self._subscriptions: dict[str, list[Subscription]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        # The latest messages, for tests and debugging (bounded: the stack may run for days).
        self.published: deque[tuple[str, dict[str, Any]]] = deque(maxlen=10_000)

    def subscribe(self, subscription: Subscription) -> None:
        """Add a push subscription."""
        with self._lock:
            self._subscriptions.setdefault(subscription.topic, []).append(subscription)

    def publish(self, topic: str, message: Message) -> str:
        """Publish a pipeline message (the :class:`Publisher` protocol)."""
        # As the production publisher: the current trace travels as an attribute.
        attributes = {**message_attributes(message), **trace_context.propagation()}
        return self.publish_raw(topic, message.model_dump_json().encode(), attributes)

    def publish_raw(self, topic: str, data: bytes, attributes: dict[str, str]) -> str:
        """Publish bytes with attributes to every subscription of ``topic``."""
        message_id = str(next(self._ids))
        with self._lock:
            subscriptions = list(self._subscriptions.get(topic, []))
            self.published.append((topic, {"data": data, "attributes": attributes}))
        copies = 2 if self.options.duplicate else 1
        for subscription in subscriptions:
            for _ in range(copies):
                self._deliver(subscription, message_id, data, attributes)
        return message_id

    def _deliver(
        self, subscription: Subscription, message_id: str, data: bytes, attributes: dict[str, str]
    ) -> None:
        publish_time = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")

        def attempt(number: int) -> bool:
            body = {
                "message": {
                    "data": base64.b64encode(data).decode(),
                    "attributes": attributes,
                    "messageId": message_id,
                    "message_id": message_id,
                    "publishTime": publish_time,
                    "publish_time": publish_time,
                },
                "subscription": subscription.name,
                "deliveryAttempt": number,
            }
            status = subscription.target(body, {"topic": subscription.topic})
            return 200 <= status < 300

        def dead_letter(attempts: int) -> None:
            if subscription.dead_letter_topic:
                self.publish_raw(
                    subscription.dead_letter_topic,
                    data,
                    {**attributes, "CloudPubSubDeadLetterSourceDeliveryCount": str(attempts)},
                )

        dispatcher = subscription.dispatcher or self._dispatcher
        dispatcher.submit(
            f"{subscription.name}/{message_id}",
            attempt,
            max_attempts=self.options.max_attempts,
            on_exhausted=dead_letter,
            delay_s=random.uniform(0, self.options.max_jitter_s),
        )


class LocalTaskQueue:
    """An in-process Cloud Tasks queue: implements :class:`shared.events.TaskQueue`."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        target: PushTarget,
        options: DeliveryOptions | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self._target = target
        self.options = options or DeliveryOptions()
        self._names: set[str] = set()
        self._lock = threading.Lock()

    def enqueue(self, task_name: str, task: Message) -> bool:
        """Enqueue ``task`` unless a task of that name was already enqueued."""
        with self._lock:
            if task_name in self._names:
                return False
            self._names.add(task_name)
        body = task.model_dump(mode="json")
        # As the production queue: the current trace travels as a header of the task.
        trace_headers = trace_context.propagation()
        copies = 2 if self.options.duplicate else 1
        for _ in range(copies):

            def attempt(number: int, body: dict[str, Any] = body) -> bool:
                headers = {
                    **trace_headers,
                    "X-CloudTasks-TaskName": task_name,
                    "X-CloudTasks-TaskRetryCount": str(number - 1),
                    "X-CloudTasks-TaskExecutionCount": str(number - 1),
                }
                return 200 <= self._target(body, headers) < 300

            self._dispatcher.submit(
                f"task/{task_name}",
                attempt,
                max_attempts=self.options.max_attempts,
                delay_s=random.uniform(0, self.options.max_jitter_s),
            )
        return True
