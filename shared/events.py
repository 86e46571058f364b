"""Where pipeline messages go: a publisher for topics and a queue for embed tasks.

Production uses Pub/Sub and Cloud Tasks (:mod:`shared.gcp.pubsub`,
:mod:`shared.gcp.tasks`); the local stack installs its in-process bus and task queue
with :func:`set_publisher` / :func:`set_task_queue`. Both are created lazily, once per
instance, so a function that never publishes never imports the Pub/Sub client.
"""

from __future__ import annotations

import threading
from typing import Protocol

from shared.config import get_settings
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


def message_attributes(message: Message) -> dict[str, str]:
    """Attributes set on every published message: its type and the ids it names."""
    attributes = {"type": type(message).__name__, "schema_version": str(message.v)}
    for key in ("version_id", "document_id", "knowledge_base_id"):
        value = getattr(message, key, None)
        if value:
            attributes[key] = str(value)
    return attributes


_lock = threading.Lock()
_publisher: Publisher | None = None
_task_queue: TaskQueue | None = None


def get_publisher() -> Publisher:
    """Return this instance's publisher, creating the Pub/Sub one on first use."""
    global _publisher
    with _lock:
        if _publisher is None:
            from shared.gcp.pubsub import PubSubPublisher

            _publisher = PubSubPublisher(project=get_settings().project)
        return _publisher


def get_task_queue() -> TaskQueue:
    """Return this instance's task queue, creating the Cloud Tasks one on first use."""
    global _task_queue
    with _lock:
        if _task_queue is None:
            from shared.gcp.tasks import CloudTasksQueue

            settings = get_settings()
            _task_queue = CloudTasksQueue(
                project=settings.project,
                location=settings.tasks_location,
                queue=settings.tasks_queue,
                target_url=settings.embed_url,
                service_account_email=settings.tasks_service_account,
            )
        return _task_queue


def set_publisher(publisher: Publisher | None) -> None:
    """Install ``publisher`` for this process (the local stack and tests do this)."""
    global _publisher
    with _lock:
        _publisher = publisher


def set_task_queue(task_queue: TaskQueue | None) -> None:
    """Install ``task_queue`` for this process (the local stack and tests do this)."""
    global _task_queue
    with _lock:
        _task_queue = task_queue
