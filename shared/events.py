"""Where pipeline messages go: a publisher for topics and a queue for embed tasks.

Production uses Pub/Sub and Cloud Tasks (:mod:`shared.gcp.pubsub`,
:mod:`shared.gcp.tasks`); the local stack passes its in-process bus and task queue to
the :class:`~shared.runtime.Runtime`, which creates the production ones lazily.
"""

from __future__ import annotations

from typing import Protocol

from shared.models import EmbedTask, Message


class Publisher(Protocol):
    """Publishes a message to a topic (short name, e.g. ``ragline-parse``)."""

    def publish(self, topic: str, message: Message) -> str:
        """Publish ``message`` and return the message id once the broker has it."""
        ...


class TaskQueue(Protocol):
    """Enqueues embed tasks with deterministic names (duplicates are ignored)."""

    def enqueue(self, task_name: str, task: EmbedTask) -> bool:
        """Enqueue ``task`` as ``task_name``; return False if that name already exists."""
        ...
