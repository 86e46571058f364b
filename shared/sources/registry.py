"""Source types: what a source's ``config`` must look like and which connector runs it.

A type names a pydantic model its configuration is validated with when a source is
created or changed (a clear 400 otherwise), the checks that need the deployment's
settings (a bucket it may read, a URL the SSRF guard allows) and a factory that builds
its connector. Factories import their connector inside, so the ``sync`` function loads
only the connector of the source it runs, and ``manage`` loads none.

Types register here at import (``gcs``, ``url``); tests register their own with
:func:`register` (and remove them with :func:`unregister`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.config import Settings
from shared.errors import InvalidInputError
from shared.sources.web.config import UrlSourceConfig

if TYPE_CHECKING:
    from shared.runtime import Runtime
    from shared.sources.connector import Connector


class SourceConfig(BaseModel):
    """Base of every type's configuration: unknown keys are refused.

    Attributes:
        max_items: At most this many items per run (pages, objects); the run enforces
            it, never the connector. None: the deployment's ``source_max_items``.
    """

    model_config = ConfigDict(extra="forbid")

    max_items: int | None = Field(None, ge=1, le=100_000)


@dataclass(frozen=True)
class SourceType:
    """One source type.

    Attributes:
        name: The ``type`` of the API (``gcs``, ``url``).
        config_model: Validates ``config``.
        connector: Builds the connector for a validated config (imports it lazily).
        check: Checks against the deployment's settings (raises InvalidInputError).
        outbound_urls: URLs the config names, refused by the SSRF guard at creation
            (before any connection) when they are not public.
    """

    name: str
    config_model: type[BaseModel]
    connector: Callable[[Runtime, Any], Connector]
    check: Callable[[Any, Settings], None] | None = None
    outbound_urls: Callable[[Any], list[str]] | None = None


_TYPES: dict[str, SourceType] = {}


def register(source_type: SourceType) -> None:
    """Make ``source_type`` available (replacing one of the same name)."""
    _TYPES[source_type.name] = source_type


def unregister(name: str) -> None:
    """Remove a type (tests that registered their own)."""
    _TYPES.pop(name, None)


def type_names() -> list[str]:
    """The registered type names, sorted."""
    return sorted(_TYPES)


def source_type(name: str) -> SourceType:
    """The registered type ``name``.

    Raises:
        InvalidInputError: ``unknown_source_type``.
    """
    found = _TYPES.get(name)
    if found is None:
        raise InvalidInputError(
            f"unknown source type {name!r}; known: {', '.join(type_names())}",
            code="unknown_source_type",
        )
    return found


def validate_config(name: str, raw: dict[str, Any], settings: Settings) -> BaseModel:
    """``raw`` validated as type ``name``'s configuration, checked against ``settings``.

    Raises:
        InvalidInputError: Unknown type (``unknown_source_type``), a config the model
            refuses (``invalid_source_config``, naming the field) or a check's refusal.
    """
    kind = source_type(name)
    try:
        config = kind.config_model.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "config"
        raise InvalidInputError(
            f"config.{where}: {first.get('msg')}", code="invalid_source_config"
        ) from error
    if kind.check is not None:
        kind.check(config, settings)
    return config


def max_items(config: BaseModel, settings: Settings) -> int:
    """The item cap of one run of ``config``: its own ``max_items``, within the deployment's."""
    cap = settings.source_max_items
    own: int | None = getattr(config, "max_items", None)
    return cap if own is None else min(own, cap)


# gcs: an existing bucket prefix the deployment has been granted read on.

_GS_URI = re.compile(r"gs://([a-z0-9][a-z0-9._-]{1,220}[a-z0-9])(?:/(.*))?")


class GcsConfig(SourceConfig):
    """Configuration of a ``gcs`` source: ``{"uri": "gs://bucket/prefix"}``."""

    uri: str = Field(max_length=1100)

    @field_validator("uri")
    @classmethod
    def _gs_uri(cls, value: str) -> str:
        if _GS_URI.fullmatch(value) is None:
            raise ValueError("must look like gs://bucket/prefix")
        return value

    @property
    def bucket(self) -> str:
        """The bucket's name."""
        match = _GS_URI.fullmatch(self.uri)
        return match.group(1) if match else ""

    @property
    def prefix(self) -> str:
        """The object name prefix ('' for the whole bucket)."""
        match = _GS_URI.fullmatch(self.uri)
        return (match.group(2) or "") if match else ""


def _check_gcs(config: GcsConfig, settings: Settings) -> None:
    if config.bucket in (settings.upload_bucket, settings.work_bucket):
        raise InvalidInputError(
            f"gs://{config.bucket} is one of Ragline's own buckets", code="bucket_not_allowed"
        )
    if config.bucket not in settings.source_buckets:
        raise InvalidInputError(
            f"this deployment may not read gs://{config.bucket}; an operator grants it"
            " (Terraform variable source_buckets)",
            code="bucket_not_allowed",
        )


def _gcs_connector(runtime: Runtime, config: GcsConfig) -> Connector:
    from shared.sources.gcs import GcsConnector

    return GcsConnector(
        runtime.objects,
        config.bucket,
        config.prefix,
        max_bytes=runtime.settings.source_max_item_bytes,
    )


# url: a web page or a crawl from it (shared/sources/web; its config model is light, the
# crawler itself is imported only when a run builds its connector).


def _url_connector(runtime: Runtime, config: UrlSourceConfig) -> Connector:
    from shared.sources.web.connector import url_connector

    return url_connector(config.model_dump(), runtime.outbound, runtime.settings)


register(SourceType("gcs", GcsConfig, _gcs_connector, check=_check_gcs))
register(
    SourceType("url", UrlSourceConfig, _url_connector, outbound_urls=lambda config: [config.url])
)
