"""Enqueue embed tasks on Google Cloud Tasks.

:class:`CloudTasksQueue` implements :class:`shared.events.TaskQueue`: each
:class:`~shared.models.EmbedTask` becomes an HTTP task that POSTs its JSON to the embed
function, authenticated with an OIDC token. Task names are deterministic (derived from
the caller's ``task_name``), so Cloud Tasks itself rejects a duplicate with
``ALREADY_EXISTS``: redelivering the chunk step never embeds the same batch twice.

The client library is imported and the client created on first use, to keep it off
the cold-start path of functions that never enqueue.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
from typing import TYPE_CHECKING

from shared import trace_context
from shared.errors import TransientError
from shared.models import Message

if TYPE_CHECKING:
    from google.cloud import tasks_v2

#: Longest task id Cloud Tasks accepts (the part after ``/tasks/``).
MAX_TASK_ID_LENGTH = 500

#: Seconds :meth:`CloudTasksQueue.enqueue` may spend on one task, retries included.
DEFAULT_ENQUEUE_TIMEOUT_S = 20.0
# Cloud Tasks' own default for HTTP tasks; Settings.embed_dispatch_deadline_s overrides it.
DEFAULT_DISPATCH_DEADLINE_S = 600

_VALID_TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,500}")
_INVALID_TASK_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]")
# Hex digits of SHA-256 appended to a rewritten task id: 128 bits, collision-free in
# practice, short enough to leave most of the 500 characters readable.
_HASH_LENGTH = 32


def task_id(task_name: str) -> str:
    """Turn a caller's task name into a valid, deterministic Cloud Tasks task id.

    A name that is already valid (``[A-Za-z0-9_-]``, at most 500 characters) is used
    unchanged. Any other name is sanitized and suffixed with a hash of the *original*
    name, so two different names (``a.b`` and ``a:b``) never collapse into one id and
    wrongly deduplicate each other, while the same name always maps to the same id.

    Args:
        task_name: Any string, e.g. ``embed-<version_id>-<first>-<last>``.

    Returns:
        A string matching ``[A-Za-z0-9_-]{1,500}``.
    """
    if _VALID_TASK_ID.fullmatch(task_name):
        return task_name
    digest = hashlib.sha256(task_name.encode()).hexdigest()[:_HASH_LENGTH]
    readable = _INVALID_TASK_ID_CHARS.sub("_", task_name)
    readable = readable[: MAX_TASK_ID_LENGTH - _HASH_LENGTH - 1]
    return f"{readable}-{digest}" if readable else digest


class CloudTasksQueue:
    """Creates HTTP tasks that POST a task message (e.g. an :class:`EmbedTask`) to its target.

    Args:
        project: Project of the queue.
        location: Region of the queue (e.g. ``us-central1``).
        queue: Queue id (e.g. ``ragline-embed``).
        target_url: HTTPS URL of the embed function; also the OIDC audience.
        service_account_email: Identity Cloud Tasks signs the OIDC token as. Empty
            means no token (only for an unauthenticated local target).
        client: A ready ``CloudTasksClient`` (tests pass one pointed at a local
            server); by default one is created on first use.
        timeout_s: Total seconds one enqueue may take, retries included.
        dispatch_deadline_s: Seconds Cloud Tasks waits for the target to answer one
            attempt (15-1800); longer than the embed function's timeout, so an attempt
            ends on the function's side and is not retried while it still runs.
    """

    def __init__(
        self,
        project: str,
        location: str,
        queue: str,
        target_url: str,
        service_account_email: str,
        client: tasks_v2.CloudTasksClient | None = None,
        *,
        timeout_s: float = DEFAULT_ENQUEUE_TIMEOUT_S,
        dispatch_deadline_s: int = DEFAULT_DISPATCH_DEADLINE_S,
    ) -> None:
        self._parent = f"projects/{project}/locations/{location}/queues/{queue}"
        self._target_url = target_url
        self._service_account_email = service_account_email
        self._client = client
        self._timeout_s = timeout_s
        self._dispatch_deadline = dt.timedelta(seconds=dispatch_deadline_s)
        self._client_lock = threading.Lock()

    @property
    def queue_path(self) -> str:
        """Full resource name of the queue."""
        return self._parent

    @property
    def client(self) -> tasks_v2.CloudTasksClient:
        """The Cloud Tasks client, created on first use."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    from google.cloud import tasks_v2

                    self._client = tasks_v2.CloudTasksClient()
        return self._client

    def task_path(self, task_name: str) -> str:
        """Full resource name of the task ``task_name`` maps to."""
        return f"{self._parent}/tasks/{task_id(task_name)}"

    def enqueue(self, task_name: str, task: Message) -> bool:
        """Create the HTTP task ``task_name`` carrying ``task``.

        Args:
            task_name: Deterministic name of the task; see :func:`task_id`.
            task: The task's message (an embed request, a webhook delivery), sent as
                the JSON body.

        Returns:
            True if the task was created, False if a task of that name already exists
            (or existed recently: Cloud Tasks keeps names of finished or deleted tasks
            reserved for a while), i.e. this is a duplicate and nothing was enqueued.

        Raises:
            TransientError: Any other failure (unavailable, deadline, quota, missing
                queue or permission); the caller lets it propagate to be retried.
        """
        from google.api_core import exceptions as api_exceptions
        from google.api_core import retry as api_retry
        from google.cloud import tasks_v2

        http_request = tasks_v2.HttpRequest(
            http_method=tasks_v2.HttpMethod.POST,
            url=self._target_url,
            # traceparent: the embed step continues the trace that enqueued it.
            headers={"Content-Type": "application/json", **trace_context.propagation()},
            body=task.model_dump_json().encode(),
        )
        if self._service_account_email:
            # The embed function runs with IAM-only invocation; Cloud Tasks mints an
            # ID token for this identity with the function's URL as audience.
            http_request.oidc_token = tasks_v2.OidcToken(
                service_account_email=self._service_account_email,
                audience=self._target_url,
            )
        request = tasks_v2.CreateTaskRequest(
            parent=self._parent,
            task=tasks_v2.Task(
                name=self.task_path(task_name),
                http_request=http_request,
                dispatch_deadline=self._dispatch_deadline,
            ),
        )
        # CreateTask has no default retry. With a fixed task name it is idempotent
        # (a replay of a create that did land answers ALREADY_EXISTS), so retrying
        # transport-level failures briefly is safe and cheaper than failing the step.
        retry = api_retry.Retry(
            initial=0.1,
            maximum=2.0,
            multiplier=2.0,
            predicate=api_retry.if_exception_type(
                api_exceptions.ServiceUnavailable,
                api_exceptions.DeadlineExceeded,
                api_exceptions.InternalServerError,
            ),
            timeout=self._timeout_s,
        )
        try:
            self.client.create_task(
                request=request, retry=retry, timeout=min(self._timeout_s, 10.0)
            )
        except api_exceptions.AlreadyExists:
            return False
        except api_exceptions.GoogleAPIError as exc:
            raise TransientError(f"creating task {request.task.name} failed: {exc}") from exc
        return True
