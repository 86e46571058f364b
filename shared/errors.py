"""Error taxonomy shared by every function.

The split matters more than the names: a :class:`PermanentError` is recorded on the
version and the message is acknowledged (retrying cannot help); anything else is
treated as transient and propagates so the platform retries with backoff.
"""

from __future__ import annotations


class RaglineError(Exception):
    """Base class for errors Ragline raises on purpose."""


class PermanentError(RaglineError):
    """Input that will never succeed: bad, unsupported, oversized, corrupt or invalid.

    Attributes:
        code: A short machine-readable reason, e.g. ``"pdf_encrypted"``.
    """

    code: str = "permanent_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        """The human-readable reason."""
        return str(self)


class UnsupportedContentError(PermanentError):
    """The bytes are of a type Ragline does not parse."""

    code = "unsupported_content"


class CorruptContentError(PermanentError):
    """The bytes claim a supported type but cannot be read."""

    code = "corrupt_content"


class EncryptedContentError(PermanentError):
    """The document is password-protected or encrypted."""

    code = "encrypted_content"


class EmptyContentError(PermanentError):
    """The document holds no extractable text."""

    code = "empty_content"


class LimitExceededError(PermanentError):
    """The input exceeds a configured limit (bytes, pages, expansion ratio)."""

    code = "limit_exceeded"


class TransientError(RaglineError):
    """A failure worth retrying (upstream 429/5xx, timeouts, unavailable services)."""


class ApiError(RaglineError):
    """An HTTP API error rendered as ``{"error": {"code", "message"}}``.

    Attributes:
        status: The HTTP status code.
        code: A short machine-readable reason.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    @property
    def message(self) -> str:
        """The human-readable reason."""
        return str(self)
