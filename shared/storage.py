"""Objects in Cloud Storage through the real ``google-cloud-storage`` client.

Locally the same client talks to the GCS emulator (``STORAGE_EMULATOR_HOST``). The
client is created lazily, once per instance.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import threading
from dataclasses import dataclass
from typing import Any

from shared.errors import PermanentError, TransientError


@dataclass(frozen=True)
class ObjectInfo:
    """What Ragline needs to know about a stored object."""

    bucket: str
    name: str
    generation: int | None
    size: int
    md5_hex: str | None
    content_type: str | None
    metadata: dict[str, str]

    @property
    def checksum(self) -> str | None:
        """The dedupe key: ``md5:<hex>`` (computed the same way for direct uploads)."""
        return f"md5:{self.md5_hex}" if self.md5_hex else None


class ObjectMissingError(PermanentError):
    """The object (or that generation of it) is gone."""

    code = "object_missing"


def md5_checksum(data: bytes) -> str:
    """The checksum :attr:`ObjectInfo.checksum` would report for ``data``."""
    import hashlib

    return "md5:" + hashlib.md5(data, usedforsecurity=False).hexdigest()


_signer_lock = threading.Lock()
_signer: Any = None


def signing_credentials(path: str) -> Any:
    """Local stack: a service-account key file signs; in GCP, IAM signBlob does (None).

    Loaded once per instance.
    """
    global _signer
    if not path:
        return None
    with _signer_lock:
        if _signer is None:
            from google.oauth2 import service_account

            _signer = service_account.Credentials.from_service_account_file(path)
        return _signer


def content_disposition(filename: str) -> str:
    """An attachment ``Content-Disposition`` naming ``filename`` (RFC 6266 and 5987)."""
    from urllib.parse import quote

    fallback = "".join(
        char if 32 <= ord(char) < 127 and char not in '"\\' else "_" for char in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _info(blob: Any) -> ObjectInfo:
    md5_hex = base64.b64decode(blob.md5_hash).hex() if blob.md5_hash else None
    return ObjectInfo(
        bucket=blob.bucket.name,
        name=blob.name,
        generation=int(blob.generation) if blob.generation is not None else None,
        size=int(blob.size or 0),
        md5_hex=md5_hex,
        content_type=blob.content_type,
        metadata=dict(blob.metadata or {}),
    )


def _transient(error: Exception) -> Exception:
    return TransientError(f"storage error: {error}")


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a storage call, classifying its errors (NotFound stays for the caller)."""
    from google.api_core import exceptions as gexc

    try:
        return fn(*args, **kwargs)
    except gexc.NotFound:
        raise
    except (gexc.TooManyRequests, gexc.ServerError, gexc.ServiceUnavailable) as error:
        raise _transient(error) from error
    except (ConnectionError, TimeoutError) as error:
        raise _transient(error) from error


class ObjectStore:
    """Cloud Storage objects through one client, created on first use (once per instance).

    Args:
        client: A ready ``google.cloud.storage.Client`` (tests and the local stack pass
            one pointed at the emulator); by default one is created on first use.
        project: The project of a client created here against the emulator.
    """

    def __init__(self, client: Any = None, *, project: str = "ragline-local") -> None:
        self._client = client
        self._project = project
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The storage client, created on first use."""
        with self._lock:
            if self._client is None:
                from google.cloud.storage import Client

                if os.environ.get("STORAGE_EMULATOR_HOST"):
                    from google.auth.credentials import AnonymousCredentials

                    self._client = Client(project=self._project, credentials=AnonymousCredentials())
                else:
                    self._client = Client()
            return self._client

    def stat(self, bucket: str, name: str) -> ObjectInfo | None:
        """Return the object's info, or None if it does not exist."""
        blob = _call(self.client.bucket(bucket).get_blob, name)
        return _info(blob) if blob is not None else None

    def upload_bytes(
        self,
        bucket: str,
        name: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> ObjectInfo:
        """Write ``data`` to ``gs://bucket/name`` and return the stored object's info."""
        blob = self.client.bucket(bucket).blob(name)
        if metadata:
            blob.metadata = metadata
        _call(blob.upload_from_string, data, content_type=content_type)
        info = self.stat(bucket, name)
        if info is None:  # pragma: no cover - the write just succeeded
            raise TransientError(f"gs://{bucket}/{name} vanished right after upload")
        return info

    def download_bytes(self, bucket: str, name: str, generation: int | None = None) -> bytes:
        """Read an object (a specific generation if given).

        Raises:
            ObjectMissingError: The object or generation no longer exists.
        """
        from google.api_core import exceptions as gexc

        blob = self.client.bucket(bucket).blob(name, generation=generation)
        try:
            return bytes(_call(blob.download_as_bytes))
        except gexc.NotFound as error:
            raise ObjectMissingError(
                f"gs://{bucket}/{name} (generation {generation}) no longer exists"
            ) from error

    def delete(self, bucket: str, name: str) -> None:
        """Delete an object; a missing object is not an error (deletes are idempotent)."""
        from google.api_core import exceptions as gexc

        try:
            _call(self.client.bucket(bucket).blob(name).delete)
        except gexc.NotFound:
            return

    def list_names(self, bucket: str, prefix: str) -> list[str]:
        """The names of the bucket's objects under ``prefix``."""
        # The listing pages lazily: its requests run (and fail) inside the call.
        names: list[str] = _call(
            lambda: [blob.name for blob in self.client.list_blobs(bucket, prefix=prefix)]
        )
        return names

    def list_objects(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        """The bucket's objects under ``prefix`` with their generation, size and checksum."""
        infos: list[ObjectInfo] = _call(
            lambda: [_info(blob) for blob in self.client.list_blobs(bucket, prefix=prefix)]
        )
        return infos

    def write_json(self, bucket: str, name: str, payload: Any) -> None:
        """Write a JSON document (a pydantic model's ``model_dump_json`` string or a value)."""
        body = payload if isinstance(payload, str) else json.dumps(payload)
        blob = self.client.bucket(bucket).blob(name)
        _call(blob.upload_from_string, body.encode(), content_type="application/json")

    def read_text(self, bucket: str, name: str) -> str:
        """Read an object as UTF-8 text (raises ObjectMissingError when absent)."""
        return self.download_bytes(bucket, name).decode()

    def signed_download_url(
        self,
        bucket: str,
        name: str,
        *,
        ttl_s: int,
        filename: str,
        signing_credentials: Any = None,
    ) -> str:
        """A V4 signed URL a client can GET the object from, saved as ``filename``.

        The URL carries ``response-content-disposition``, so the download is an
        attachment named ``filename`` (RFC 6266: an ASCII fallback and the UTF-8 name).
        """
        blob = self.client.bucket(bucket).blob(name)
        kwargs: dict[str, Any] = {
            "version": "v4",
            "expiration": dt.timedelta(seconds=ttl_s),
            "method": "GET",
            "response_disposition": content_disposition(filename),
        }
        return self._sign(blob, kwargs, signing_credentials)

    def signed_upload_url(
        self,
        bucket: str,
        name: str,
        *,
        content_type: str,
        ttl_s: int,
        signing_credentials: Any = None,
    ) -> str:
        """A V4 signed URL a client can PUT the object's bytes to.

        In Cloud Functions the runtime credentials hold no private key, so signing goes
        through the IAM signBlob API with the function's service account and an access
        token; locally a generated service-account key signs instead.
        """
        blob = self.client.bucket(bucket).blob(name)
        kwargs: dict[str, Any] = {
            "version": "v4",
            "expiration": dt.timedelta(seconds=ttl_s),
            "method": "PUT",
            "content_type": content_type,
        }
        return self._sign(blob, kwargs, signing_credentials)

    @staticmethod
    def _sign(blob: Any, kwargs: dict[str, Any], signing_credentials: Any) -> str:
        """Sign a URL for ``blob`` with the key file's credentials, or through IAM signBlob."""
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        if emulator:
            kwargs["api_access_endpoint"] = emulator
        if signing_credentials is not None:
            kwargs["credentials"] = signing_credentials
        else:
            import google.auth
            import google.auth.transport.requests

            credentials, _ = google.auth.default()
            if not hasattr(credentials, "sign_bytes") or not getattr(credentials, "signer", None):
                credentials.refresh(google.auth.transport.requests.Request())
                kwargs["service_account_email"] = getattr(
                    credentials, "service_account_email", None
                )
                kwargs["access_token"] = credentials.token
        return str(blob.generate_signed_url(**kwargs))
