"""Where pipeline messages go: a publisher for topics and queues for tasks.

Production uses Pub/Sub and Cloud Tasks (:mod:`shared.gcp.pubsub`,
:mod:`shared.gcp.tasks`); the local stack passes its in-process bus and task queue to
the :class:`~shared.runtime.Runtime`, which creates the production ones lazily.
"""

from __future__ import annotations

from typing import Protocol

from shared.models import Message


class Publisher(Protocol):
    """Publishes a message to a topic (short name, e.g. ``ragline-parse``)."""

    def publish(self, topic: str, message: Message) -> str:
        """Publish ``message`` and return the message id once the broker has it."""
        ...


class TaskQueue(Protocol):
    """Enqueues tasks (embed, webhook deliveries) with deterministic names.

    A queue has one target; a name already used is ignored (a duplicate).
    """

    def enqueue(self, task_name: str, task: Message) -> bool:
        """Enqueue ``task`` as ``task_name``; return False if that name already exists."""
        ...
