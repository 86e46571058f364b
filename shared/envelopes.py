"""Unwrap platform events into typed payloads.

An envelope is validated first, then its payload; a validation error is a poison
message (logged and acknowledged), never a retry.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shared.storage import ObjectInfo

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


def event_time(cloud_event: Any) -> dt.datetime | None:
    """The CloudEvent's ``time`` attribute as an aware datetime, if present and valid."""
    raw = cloud_event.get("time") if hasattr(cloud_event, "get") else None
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def pubsub_payload(cloud_event: Any, model: type[M]) -> M | None:
    """The Pub/Sub message inside a ``messagePublished`` CloudEvent, as ``model``.

    Returns:
        The message, or None for a poison message (logged).
    """
    data: Any = getattr(cloud_event, "data", None)
    try:
        encoded = data["message"]["data"]
        return model.model_validate_json(base64.b64decode(encoded))
    except (KeyError, TypeError, ValueError, ValidationError) as error:
        log.error(
            "dropping malformed %s message: %s",
            model.__name__,
            error,
            extra={"event_id": cloud_event.get("id") if hasattr(cloud_event, "get") else None},
        )
        return None


def delivery_attempt(cloud_event: Any) -> int | None:
    """How often the message was delivered before it was dead-lettered, if known.

    Pub/Sub stamps dead-lettered messages with ``CloudPubSubDeadLetterSourceDeliveryCount``
    (functions-framework drops the push body's own ``deliveryAttempt``).
    """
    data: Any = getattr(cloud_event, "data", None)
    try:
        attributes = data["message"].get("attributes") or {}
        value = attributes.get("CloudPubSubDeadLetterSourceDeliveryCount")
    except (AttributeError, KeyError, TypeError):
        return None
    try:
        return int(value) if value else None
    except ValueError:
        return None


def storage_object(cloud_event: Any) -> ObjectInfo | None:
    """The object a GCS CloudEvent (``google.cloud.storage.object.v1.*``) describes."""
    data: Any = getattr(cloud_event, "data", None)
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError:
            data = None
    if not isinstance(data, dict) or not data.get("bucket") or not data.get("name"):
        log.error("dropping malformed storage event: %r", data)
        return None
    try:
        md5 = data.get("md5Hash")
        return ObjectInfo(
            bucket=str(data["bucket"]),
            name=str(data["name"]),
            generation=int(data["generation"]) if data.get("generation") else None,
            size=int(data.get("size") or 0),
            md5_hex=base64.b64decode(md5).hex() if md5 else None,
            content_type=data.get("contentType"),
            metadata=dict(data.get("metadata") or {}),
        )
    except (TypeError, ValueError) as error:
        log.error("dropping malformed storage event: %s", error)
        return None
