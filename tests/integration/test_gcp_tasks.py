"""CloudTasksQueue against a local gRPC Cloud Tasks server, through the real client."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.cloud import tasks_v2

from shared.errors import TransientError
from shared.gcp.tasks import MAX_TASK_ID_LENGTH, CloudTasksQueue, task_id
from shared.models import EmbedTask
from tests.support.grpc_fakes import FakeCloudTasks, serve, tasks_client

TARGET_URL = "https://embed-abc123-uc.a.run.app/"
SERVICE_ACCOUNT = "ragline-tasks@proj.iam.gserviceaccount.com"
QUEUE_PATH = "projects/proj/locations/us-central1/queues/ragline-embed"


@pytest.fixture()
def fake() -> FakeCloudTasks:
    return FakeCloudTasks()


@pytest.fixture()
def client(fake: FakeCloudTasks) -> Iterator[tasks_v2.CloudTasksClient]:
    with serve(fake.handler()) as address:
        yield tasks_client(address)


def make_queue(
    client: tasks_v2.CloudTasksClient, service_account: str = SERVICE_ACCOUNT, **kwargs: Any
) -> CloudTasksQueue:
    return CloudTasksQueue(
        project="proj",
        location="us-central1",
        queue="ragline-embed",
        target_url=TARGET_URL,
        service_account_email=service_account,
        client=client,
        **kwargs,
    )


def test_enqueue_creates_http_task_with_oidc_token(fake, client):
    task = EmbedTask(
        version_id="00000000-0000-4000-8000-0000000000e1", first_ordinal=0, last_ordinal=63
    )

    created = make_queue(client).enqueue("embed-ver-1-0-63", task)

    assert created is True
    name = f"{QUEUE_PATH}/tasks/embed-ver-1-0-63"
    assert list(fake.tasks) == [name]
    http = fake.tasks[name].http_request
    assert http.http_method == tasks_v2.HttpMethod.POST
    assert http.url == TARGET_URL
    assert dict(http.headers) == {"Content-Type": "application/json"}
    # Cloud Tasks' default (600 s) unless the queue is told otherwise.
    assert fake.tasks[name].dispatch_deadline == dt.timedelta(seconds=600)
    assert EmbedTask.model_validate_json(http.body) == task
    assert json.loads(http.body) == {
        "v": 1,
        "version_id": "00000000-0000-4000-8000-0000000000e1",
        "first_ordinal": 0,
        "last_ordinal": 63,
    }
    assert http.oidc_token.service_account_email == SERVICE_ACCOUNT
    assert http.oidc_token.audience == TARGET_URL
    # The task is readable back through the real client, too.
    assert client.get_task(name=name).http_request.url == TARGET_URL


def test_enqueue_without_service_account_sends_no_token(fake, client):
    make_queue(client, service_account="").enqueue(
        "t1",
        EmbedTask(
            version_id="00000000-0000-4000-8000-00000000000a", first_ordinal=0, last_ordinal=0
        ),
    )

    (task,) = fake.tasks.values()
    assert "oidc_token" not in task.http_request
    assert "oauth_token" not in task.http_request


def test_tasks_carry_the_configured_dispatch_deadline(fake, client):
    make_queue(client, dispatch_deadline_s=330).enqueue(
        "t2",
        EmbedTask(
            version_id="00000000-0000-4000-8000-00000000000b", first_ordinal=0, last_ordinal=0
        ),
    )

    (task,) = fake.tasks.values()
    assert task.dispatch_deadline == dt.timedelta(seconds=330)


def test_duplicate_task_name_returns_false(fake, client):
    queue = make_queue(client)
    task = EmbedTask(
        version_id="00000000-0000-4000-8000-0000000000e1", first_ordinal=64, last_ordinal=127
    )

    assert queue.enqueue("embed-ver-1-64-127", task) is True
    assert queue.enqueue("embed-ver-1-64-127", task) is False

    assert len(fake.tasks) == 1
    assert fake.create_calls == 2


def test_unavailable_server_raises_transient_error_after_retrying(fake, client):
    fake.fail_with = grpc.StatusCode.UNAVAILABLE
    queue = make_queue(client, timeout_s=0.5)

    with pytest.raises(TransientError, match="creating task"):
        queue.enqueue(
            "t",
            EmbedTask(
                version_id="00000000-0000-4000-8000-00000000000a", first_ordinal=0, last_ordinal=0
            ),
        )

    # CreateTask with a fixed name is idempotent, so the queue retries before failing.
    assert fake.create_calls > 1
    assert fake.tasks == {}


def test_other_grpc_errors_raise_transient_error(fake, client):
    fake.fail_with = grpc.StatusCode.PERMISSION_DENIED

    with pytest.raises(TransientError):
        make_queue(client).enqueue(
            "t",
            EmbedTask(
                version_id="00000000-0000-4000-8000-00000000000a", first_ordinal=0, last_ordinal=0
            ),
        )

    assert fake.create_calls == 1  # not retryable: no second attempt


def test_unreachable_server_raises_transient_error():
    # Nothing listens on the port once the server is stopped.
    with serve() as address:
        pass
    queue = make_queue(tasks_client(address), timeout_s=0.5)

    with pytest.raises(TransientError):
        queue.enqueue(
            "t",
            EmbedTask(
                version_id="00000000-0000-4000-8000-00000000000a", first_ordinal=0, last_ordinal=0
            ),
        )


def test_invalid_task_names_are_sanitized_deterministically(fake, client):
    queue = make_queue(client)
    task = EmbedTask(
        version_id="00000000-0000-4000-8000-00000000000a", first_ordinal=0, last_ordinal=0
    )

    assert queue.enqueue("embed/v.1:0", task) is True
    assert queue.enqueue("embed/v.1:0", task) is False  # same name -> same id
    assert queue.enqueue("embed_v_1_0", task) is True  # distinct name, no collision

    assert len(fake.tasks) == 2


@pytest.mark.parametrize(
    "name",
    ["embed-v1-0-63", "a.b", "a:b", "", "x" * 500, "x" * 501, "é" * 600, "a/" * 400],
)
def test_task_id_is_valid_and_stable(name):
    tid = task_id(name)

    assert 1 <= len(tid) <= MAX_TASK_ID_LENGTH
    assert all(c.isascii() and (c.isalnum() or c in "_-") for c in tid)
    assert task_id(name) == tid


def test_task_id_keeps_valid_names_and_separates_similar_ones():
    assert task_id("embed-v1-0-63") == "embed-v1-0-63"
    assert task_id("x" * 500) == "x" * 500
    assert task_id("a.b") != task_id("a:b")
    assert task_id("a.b") != "a_b"
    assert task_id("x" * 501) != task_id("x" * 502)
    assert task_id("a.b").startswith("a_b-")


def test_client_is_created_lazily():
    queue = CloudTasksQueue("p", "l", "q", TARGET_URL, "")

    # No client (and no credentials lookup) until the first enqueue.
    assert queue._client is None
    assert queue.task_path("a.b").startswith("projects/p/locations/l/queues/q/tasks/a_b-")
