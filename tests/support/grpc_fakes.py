"""Local gRPC servers speaking the Cloud Tasks and Secret Manager wire protocols.

Neither service has an official emulator, so tests run small in-memory servers and
point the *real* client libraries at them over an insecure channel. The servers are
generic gRPC handlers built from the client packages' own proto-plus message types
(``Type.deserialize`` / ``Type.serialize``), so requests go through the exact
serialization, routing headers, retry and error mapping of production code.

The packages ship no ``*_pb2_grpc`` servicers, hence the generic handlers.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import google_crc32c
import grpc
from google.cloud import secretmanager_v1, tasks_v2
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

_TASK_NAME = re.compile(r"projects/[^/]+/locations/[^/]+/queues/[^/]+/tasks/[A-Za-z0-9_-]{1,500}")


def _unary(
    behaviour: Callable[[Any, grpc.ServicerContext], Any],
    request_type: Any,
    response_type: Any,
) -> grpc.RpcMethodHandler:
    """A unary-unary handler that (de)serializes with proto-plus message types."""
    return grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=request_type.deserialize,
        response_serializer=response_type.serialize,
    )


@dataclass
class FakeCloudTasks:
    """In-memory ``google.cloud.tasks.v2.CloudTasks`` (CreateTask and GetTask).

    Attributes:
        tasks: Created tasks by full name.
        create_calls: Number of CreateTask calls received (including rejected ones).
        fail_with: When set, every CreateTask aborts with this status code.
    """

    tasks: dict[str, tasks_v2.Task] = field(default_factory=dict)
    create_calls: int = 0
    fail_with: grpc.StatusCode | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create_task(
        self, request: tasks_v2.CreateTaskRequest, context: grpc.ServicerContext
    ) -> tasks_v2.Task:
        with self._lock:
            self.create_calls += 1
            if self.fail_with is not None:
                context.abort(self.fail_with, "injected failure")
            task = request.task
            # Validate like the real service, so a bad name fails the test loudly.
            if not _TASK_NAME.fullmatch(task.name) or not task.name.startswith(
                request.parent + "/tasks/"
            ):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad task name {task.name}")
            if task.name in self.tasks:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, f"{task.name} already exists")
            self.tasks[task.name] = task
            return task

    def get_task(
        self, request: tasks_v2.GetTaskRequest, context: grpc.ServicerContext
    ) -> tasks_v2.Task:
        with self._lock:
            if request.name not in self.tasks:
                context.abort(grpc.StatusCode.NOT_FOUND, f"{request.name} not found")
            return self.tasks[request.name]

    def handler(self) -> grpc.GenericRpcHandler:
        """The generic handler serving this fake."""
        return grpc.method_handlers_generic_handler(
            "google.cloud.tasks.v2.CloudTasks",
            {
                "CreateTask": _unary(self.create_task, tasks_v2.CreateTaskRequest, tasks_v2.Task),
                "GetTask": _unary(self.get_task, tasks_v2.GetTaskRequest, tasks_v2.Task),
            },
        )


@dataclass
class FakeSecretManager:
    """In-memory ``google.cloud.secretmanager.v1.SecretManagerService`` (access only).

    Attributes:
        secrets: Payloads by version name (``projects/P/secrets/S/versions/V``);
            ``.../versions/latest`` must be listed explicitly.
        access_calls: AccessSecretVersion calls received, by requested name.
        fail_with: When set, every access aborts with this status code.
        corrupt_crc: When True, responses carry a wrong CRC32C.
    """

    secrets: dict[str, bytes] = field(default_factory=dict)
    access_calls: list[str] = field(default_factory=list)
    fail_with: grpc.StatusCode | None = None
    corrupt_crc: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def access_secret_version(
        self,
        request: secretmanager_v1.AccessSecretVersionRequest,
        context: grpc.ServicerContext,
    ) -> secretmanager_v1.AccessSecretVersionResponse:
        with self._lock:
            self.access_calls.append(request.name)
            if self.fail_with is not None:
                context.abort(self.fail_with, "injected failure")
            if request.name not in self.secrets:
                context.abort(
                    grpc.StatusCode.NOT_FOUND,
                    f"Secret [{request.name}] not found or has no versions.",
                )
            data = self.secrets[request.name]
        crc = google_crc32c.value(data) + (1 if self.corrupt_crc else 0)
        return secretmanager_v1.AccessSecretVersionResponse(
            name=request.name,
            payload=secretmanager_v1.SecretPayload(data=data, data_crc32c=crc),
        )

    def handler(self) -> grpc.GenericRpcHandler:
        """The generic handler serving this fake."""
        return grpc.method_handlers_generic_handler(
            "google.cloud.secretmanager.v1.SecretManagerService",
            {
                "AccessSecretVersion": _unary(
                    self.access_secret_version,
                    secretmanager_v1.AccessSecretVersionRequest,
                    secretmanager_v1.AccessSecretVersionResponse,
                ),
            },
        )


@contextmanager
def serve(*handlers: grpc.GenericRpcHandler) -> Iterator[str]:
    """Serve ``handlers`` on a free localhost port; yield its ``host:port``."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers(handlers)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def tasks_client(address: str) -> tasks_v2.CloudTasksClient:
    """A real Cloud Tasks client talking to ``address`` without TLS or credentials."""
    transport = CloudTasksGrpcTransport(channel=grpc.insecure_channel(address))
    return tasks_v2.CloudTasksClient(transport=transport)


def secret_manager_client(address: str) -> secretmanager_v1.SecretManagerServiceClient:
    """A real Secret Manager client talking to ``address`` without TLS or credentials."""
    transport = SecretManagerServiceGrpcTransport(channel=grpc.insecure_channel(address))
    return secretmanager_v1.SecretManagerServiceClient(transport=transport)
