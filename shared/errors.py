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


class RefusedObjectError(PermanentError):
    """An object in the uploads bucket that belongs to no knowledge base it may enter.

    Nothing of it is ingested; the refusal is recorded with its ``code`` and the message
    acknowledged.

    Attributes:
        workspace: The workspace the object named, if it named one.
        knowledge_base: The knowledge base the object named, if it named one.
    """

    code = "object_refused"

    def __init__(
        self,
        message: str,
        *,
        code: str,
        workspace: str | None = None,
        knowledge_base: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.workspace = workspace
        self.knowledge_base = knowledge_base


class TransientError(RaglineError):
    """A failure worth retrying (upstream 429/5xx, timeouts, unavailable services)."""


class DomainError(RaglineError):
    """A request the domain refuses, with a machine-readable code.

    The HTTP layer turns each subclass into a status in one table
    (``shared.api.http.ERROR_STATUS``); domain code never names a status.

    Attributes:
        code: A short machine-readable reason, e.g. ``"document_not_found"``.
    """

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        """The human-readable reason."""
        return str(self)


class NotFoundError(DomainError):
    """What the request names does not exist (or is not visible to the caller)."""

    code = "not_found"


class ConflictError(DomainError):
    """The request conflicts with the current state (a taken name, a deleted document)."""

    code = "conflict"


class InvalidInputError(DomainError):
    """The request's values are invalid; ``code`` says which rule they break."""

    code = "invalid_input"


class UnsafeUrlError(InvalidInputError):
    """A URL Ragline will not connect to (not http(s), or not a public address)."""

    code = "unsafe_url"


class InvalidSignatureError(InvalidInputError):
    """A webhook delivery whose signature does not verify (tampered, replayed, unsigned)."""

    code = "invalid_signature"


class TooLargeError(InvalidInputError):
    """The request or its payload is larger than a configured limit."""

    code = "payload_too_large"


class UnauthenticatedError(DomainError):
    """The caller is not authenticated: no credential, or one that does not verify.

    The code is required and says why (``token_missing``, ``token_expired``, ...), so
    a client can tell a token to refresh from one that will never work.
    """

    code = "unauthenticated"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, code=code)


class ForbiddenError(DomainError):
    """The caller may not do this."""

    code = "forbidden"


class UpstreamError(DomainError):
    """A service the request depends on (the language model) failed.

    Attributes:
        retryable: True when trying again later may succeed (rate limits, timeouts).
    """

    code = "upstream_error"

    def __init__(self, message: str, *, code: str | None = None, retryable: bool = False) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable


class UnavailableError(DomainError):
    """A dependency the request needs failed; retrying later may help."""

    code = "unavailable"


class QuotaExceededError(DomainError):
    """A quota or rate limit refuses the request until its window ends.

    ``code`` is ``rate_limited`` for requests per minute and ``quota_exceeded`` for
    questions, tokens and budgets.

    Attributes:
        limit: The limit's name, e.g. ``"questions_per_day"``.
        retry_after_s: Whole seconds until the window ends (when it may succeed again);
            None when waiting cannot help (a question larger than its limit).
    """

    code = "quota_exceeded"

    def __init__(
        self, message: str, *, limit: str, retry_after_s: int | None, code: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.limit = limit
        self.retry_after_s = retry_after_s
