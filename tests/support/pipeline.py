"""Helpers for tests that drive pipeline steps by hand.

:class:`Recorder` replaces the transports so a test decides which message is delivered
when (or that it is lost); the steps, the database and storage stay the real ones.
"""

from __future__ import annotations

from typing import Any

from scripts.localstack.stack import LocalStack
from shared.models import EmbedTask, Message
from shared.pipeline.ingest import register_object
from shared.store.documents import ensure_document

TEXT_V1 = "# Report\n\n" + "The first version talks about apples. " * 200
TEXT_V2 = "# Report\n\n" + "The second version talks about pears. " * 200


class Recorder:
    """Records published messages and enqueued tasks instead of delivering them."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, Message]] = []
        self.tasks: dict[str, EmbedTask] = {}

    def publish(self, topic: str, message: Message) -> str:
        """Record ``message`` (the Publisher protocol)."""
        self.messages.append((topic, message))
        return str(len(self.messages))

    def enqueue(self, task_name: str, task: Message) -> bool:
        """Record ``task`` unless its name was seen (the TaskQueue protocol)."""
        if not isinstance(task, EmbedTask):
            raise TypeError("the recorder stands in for the embed queue only")
        if task_name in self.tasks:
            return False
        self.tasks[task_name] = task
        return True

    def tasks_for(self, version_id: str) -> list[EmbedTask]:
        """The recorded embed tasks of one version."""
        return [task for task in self.tasks.values() if task.version_id == version_id]

    def install(self) -> Recorder:
        """Make this recorder the process runtime's publisher and task queue."""
        from shared.runtime import get_runtime

        runtime = get_runtime()
        runtime.publisher = self
        runtime.tasks = self
        return self


def restore_transports(stack: LocalStack) -> None:
    """Give the process back the stack's own bus and task queue."""
    stack.runtime.publisher = stack.bus
    stack.runtime.tasks = stack.tasks


def store_version(stack: LocalStack, kb_id: str, text: str) -> tuple[str, str]:
    """Store ``text`` as report.md and register it; return (document_id, version_id)."""
    document_id = ensure_document(stack.database, kb_id, "report.md", "report.md", "tester")
    info = stack.objects.upload_bytes(
        stack.settings.upload_bucket,
        f"_uploads/{document_id}/{abs(hash(text))}/report.md",
        text.encode(),
    )
    registered = register_object(stack.runtime, document_id, info)
    assert registered is not None
    return document_id, registered.version_id


def version_status(stack: LocalStack, version_id: str) -> Any:
    """The version's status as stored."""
    return stack.database.scalar(
        "SELECT status FROM document_versions WHERE id = CAST(:v AS uuid)", v=version_id
    )
