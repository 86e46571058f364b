"""Resolve ``sm://`` Secret Manager references in configuration values.

A setting such as ``RAGLINE_DB_PASSWORD`` holds either the secret itself (local
``.env``) or a reference to Secret Manager:

- ``sm://projects/P/secrets/S/versions/V``: that exact version;
- ``sm://projects/P/secrets/S``: the latest version;
- ``sm://S``: secret ``S`` of the configured project (``RAGLINE_PROJECT``), latest.

Resolved values are cached per instance with a maximum age, so a warm function does
not call Secret Manager on every request yet picks up a rotated secret within minutes.
The Secret Manager client is imported and created on first use only.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from shared.errors import TransientError

if TYPE_CHECKING:
    from google.cloud import secretmanager_v1

#: Prefix marking a value as a Secret Manager reference.
SECRET_REF_PREFIX = "sm://"

#: Seconds a resolved secret is served from cache before it is fetched again.
DEFAULT_MAX_AGE_S = 300.0

#: Seconds one Secret Manager access may take, retries included.
DEFAULT_ACCESS_TIMEOUT_S = 15.0

_FULL_REF = re.compile(r"projects/([^/]+)/secrets/([^/]+)(?:/versions/([^/]+))?")
_SHORT_REF = re.compile(r"[A-Za-z0-9_-]+")


class SecretConfigError(RuntimeError):
    """A secret reference that can never resolve as configured.

    Malformed references, missing secrets or versions, disabled versions and missing
    permissions all need an operator to fix configuration or IAM; retrying cannot
    help, so this is not a :class:`~shared.errors.TransientError`.
    """


def secret_version_name(reference: str, default_project: str | None = None) -> str:
    """Turn an ``sm://`` reference into a secret version resource name.

    Args:
        reference: ``sm://projects/P/secrets/S[/versions/V]`` or ``sm://S``.
        default_project: Project for the short form; defaults to
            ``shared.config.get_settings().project``.

    Returns:
        ``projects/P/secrets/S/versions/V`` (``V`` is ``latest`` when omitted).

    Raises:
        SecretConfigError: ``reference`` is not a well-formed ``sm://`` reference.
    """
    if not reference.startswith(SECRET_REF_PREFIX):
        raise SecretConfigError(f"not a Secret Manager reference: {reference!r}")
    body = reference[len(SECRET_REF_PREFIX) :]
    full = _FULL_REF.fullmatch(body)
    if full:
        project, secret, version = full.groups()
        return f"projects/{project}/secrets/{secret}/versions/{version or 'latest'}"
    if _SHORT_REF.fullmatch(body):
        if default_project is None:
            # Imported here: settings are only needed for the short form.
            from shared.config import get_settings

            default_project = get_settings().project
        return f"projects/{default_project}/secrets/{body}/versions/latest"
    raise SecretConfigError(
        f"malformed Secret Manager reference {reference!r}: expected "
        "sm://projects/P/secrets/S[/versions/V] or sm://S"
    )


class SecretResolver:
    """Resolves ``sm://`` references through Secret Manager, with a max-age cache.

    Thread-safe: concurrent requests of a warm instance share one cache, and a
    per-secret lock makes a cold or expired secret be fetched once, not once per
    waiting thread.

    Args:
        client: A ready ``SecretManagerServiceClient`` (tests pass one pointed at a
            local server); by default one is created on first use.
        max_age_s: Seconds a resolved value is served from cache.
        clock: Monotonic clock in seconds; injectable so tests can age the cache.
        project: Project of ``sm://S`` references; defaults to the settings' project.
        timeout_s: Total seconds one access may take, retries included.
    """

    def __init__(
        self,
        client: secretmanager_v1.SecretManagerServiceClient | None = None,
        *,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
        project: str | None = None,
        timeout_s: float = DEFAULT_ACCESS_TIMEOUT_S,
    ) -> None:
        self._client = client
        self._max_age_s = max_age_s
        self._clock = clock
        self._project = project
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str, float]] = {}
        self._fetch_locks: dict[str, threading.Lock] = {}

    @property
    def client(self) -> secretmanager_v1.SecretManagerServiceClient:
        """The Secret Manager client, created on first use."""
        with self._lock:
            if self._client is None:
                from google.cloud import secretmanager_v1

                self._client = secretmanager_v1.SecretManagerServiceClient()
            return self._client

    def resolve(self, value: str) -> str:
        """Return ``value``, or the secret it references if it starts with ``sm://``.

        Args:
            value: A plain configuration value or an ``sm://`` reference.

        Returns:
            The value itself, or the referenced secret's payload decoded as UTF-8.

        Raises:
            SecretConfigError: The reference is malformed, or the secret or version
                does not exist, is disabled, or may not be accessed.
            TransientError: Secret Manager is unavailable or timed out.
        """
        if not value.startswith(SECRET_REF_PREFIX):
            return value
        name = secret_version_name(value, self._project)
        cached = self._fresh(name)
        if cached is not None:
            return cached
        with self._fetch_lock(name):
            # Another thread may have fetched it while this one waited for the lock.
            cached = self._fresh(name)
            if cached is not None:
                return cached
            secret = self._access(name)
            with self._lock:
                self._cache[name] = (secret, self._clock())
            return secret

    def clear(self) -> None:
        """Forget every cached value (e.g. after a credential was rejected)."""
        with self._lock:
            self._cache.clear()

    def _fresh(self, name: str) -> str | None:
        with self._lock:
            entry = self._cache.get(name)
        if entry is None:
            return None
        secret, fetched_at = entry
        if self._clock() - fetched_at >= self._max_age_s:
            return None
        return secret

    def _fetch_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._fetch_locks.setdefault(name, threading.Lock())

    def _access(self, name: str) -> str:
        from google.api_core import exceptions as api_exceptions
        from google.api_core import retry as api_retry

        # The library's default retry for AccessSecretVersion runs for 60 s, as long
        # as a typical function timeout; bound it so a cold start fails fast with a
        # TransientError and the platform retries the whole invocation instead.
        retry = api_retry.Retry(
            initial=0.2,
            maximum=2.0,
            multiplier=2.0,
            predicate=api_retry.if_exception_type(
                api_exceptions.ResourceExhausted,
                api_exceptions.ServiceUnavailable,
            ),
            timeout=self._timeout_s,
        )
        try:
            response = self.client.access_secret_version(
                request={"name": name}, retry=retry, timeout=min(self._timeout_s, 10.0)
            )
        except (
            api_exceptions.NotFound,
            api_exceptions.PermissionDenied,
            api_exceptions.FailedPrecondition,
            api_exceptions.InvalidArgument,
            api_exceptions.Unauthenticated,
        ) as exc:
            raise SecretConfigError(
                f"secret {name} cannot be accessed ({type(exc).__name__}): {exc.message}"
            ) from exc
        except api_exceptions.GoogleAPIError as exc:
            raise TransientError(f"accessing secret {name} failed: {exc}") from exc

        payload = response.payload
        # Secret Manager sends a CRC32C of the payload; a mismatch means corruption
        # in transit, which a second attempt will not repeat.
        if "data_crc32c" in payload:
            import google_crc32c

            if google_crc32c.value(payload.data) != payload.data_crc32c:
                raise TransientError(f"secret {name} failed its CRC32C check")
        try:
            return payload.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SecretConfigError(f"secret {name} is not UTF-8 text") from exc


#: The resolver this instance shares (lazy client, default max age).
default_resolver = SecretResolver()


def resolve_secret(value: str) -> str:
    """Resolve ``value`` with :data:`default_resolver`; see :meth:`SecretResolver.resolve`."""
    return default_resolver.resolve(value)
