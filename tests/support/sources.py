"""A bucket of the storage emulator that gcs sources may read, for the tests that need one."""

from __future__ import annotations

from typing import Any

import pytest

from scripts.localstack.stack import LocalStack

SOURCE_BUCKET = "ragline-test-sources"


def source_bucket(stack: LocalStack, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> str:
    """Create (or empty) the bucket and allow gcs sources to read it, with ``settings``.

    Undone when the test ends (the monkeypatch restores the stack's settings).
    """
    client = stack.objects.client
    if client.lookup_bucket(SOURCE_BUCKET) is None:
        client.create_bucket(SOURCE_BUCKET)
    for blob in list(client.list_blobs(SOURCE_BUCKET)):
        stack.objects.delete(SOURCE_BUCKET, blob.name)
    runtime = stack.runtime
    changed = runtime.settings.model_copy(update={"source_buckets": [SOURCE_BUCKET], **settings})
    monkeypatch.setattr(runtime, "settings", changed)
    return SOURCE_BUCKET
