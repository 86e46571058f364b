"""Typed data that crosses module boundaries: parsed documents, chunks, messages.

Pipeline messages carry ids, never documents (big data lives in the work bucket), and
every message has a schema version so old and new handlers can coexist during a deploy.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# ---------------------------------------------------------------------------
# Parsed documents (written to the work bucket as JSON by the parse step)
# ---------------------------------------------------------------------------

BlockKind = Literal["heading", "paragraph", "list", "table", "code"]


class Block(BaseModel):
    """One structural unit of the parsed text.

    ``start``/``end`` are character offsets into :attr:`ParsedDocument.text`
    (``text[start:end]`` is the block's text). Blocks are in reading order and do not
    overlap; the text between blocks is separator whitespace only.
    """

    kind: BlockKind
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    page: int | None = Field(default=None, description="1-based page number, if paged")
    level: int | None = Field(default=None, description="heading level 1..6 for headings")


class PageSpan(BaseModel):
    """A page's character range in the parsed text (``text[start:end]``).

    ``width``/``height`` are the page's size in PDF points as displayed (crop box,
    rotation applied), the frame of its :class:`TextBox` coordinates; None when
    unknown (parsed before sizes were recorded).
    """

    number: int = Field(ge=1)
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    width: float | None = None
    height: float | None = None


class TextBox(NamedTuple):
    """Where a run of the parsed text sits on its page: one box per line of text.

    ``text[start:end]`` (offsets into :attr:`ParsedDocument.text`) is the text the box
    covers. Coordinates are PDF points from the top-left corner of the page as
    displayed (crop box, ``/Rotate`` applied; see :class:`PageSpan`), x to the right
    and y downwards, so ``x0 < x1`` and ``y0 < y1``; rounded to 0.1pt.

    A named tuple, so its JSON is the array ``[page, start, end, x0, y0, x1, y1]``: a
    long filing has thousands of lines, and field names would more than double the
    boxes' size (and a tuple is ~6x cheaper to create than a model, in the parse's hot
    path). An object with these keys validates too.
    """

    page: Annotated[int, Field(ge=1)]
    start: Annotated[int, Field(ge=0)]
    end: Annotated[int, Field(ge=0)]
    x0: float
    y0: float
    x1: float
    y1: float


class ParsedDocument(BaseModel):
    """The result of parsing one document version.

    Attributes:
        content_type: Detected MIME type (from the bytes, not the file name).
        text: The whole extracted text; blocks are separated by blank lines and
            tables are rendered as Markdown tables.
        blocks: Structural blocks in reading order, with offsets into ``text``.
        pages: Page spans for paged formats (PDF); empty otherwise.
        boxes: Where each line of text sits on its page (PDF), in text order; empty for
            other formats, for pages whose text cannot be positioned, and in
            version 1 documents.
        title: A title if the document declares one.
    """

    # 2 added page sizes and text boxes. Both default to "unknown", so version 1 JSON
    # still validates and version 2 JSON reads fine in version 1 code (extra keys are
    # ignored): a deploy can run both side by side.
    schema_version: int = 2
    content_type: str
    text: str
    blocks: list[Block]
    pages: list[PageSpan] = Field(default_factory=list)
    boxes: list[TextBox] = Field(default_factory=list)
    title: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)

    @property
    def page_count(self) -> int:
        """Number of pages (0 for unpaged formats)."""
        return len(self.pages)


class ChunkDraft(BaseModel):
    """A chunk as produced by the chunker, before it is stored and embedded.

    ``text`` equals ``parsed.text[char_start:char_end]`` of the document it came from.
    """

    ordinal: int = Field(ge=0)
    text: str
    char_start: int = Field(ge=0)
    char_end: int = Field(ge=0)
    page_start: int | None = None
    page_end: int | None = None
    heading_path: list[str] = Field(default_factory=list)
    token_count: int = Field(ge=0)
    # The boxes of the lines the chunk overlaps, offsets clipped to the chunk's range.
    boxes: list[TextBox] = Field(default_factory=list)


# ---------------------------------------------------------------------------
# Pipeline messages
# ---------------------------------------------------------------------------


def _canonical_uuid(value: str) -> str:
    return str(uuid.UUID(value))


# An id in a message: validated as a UUID, so a malformed one is a poison message
# (acknowledged) rather than a database error (retried until dead-lettered).
Id = Annotated[str, AfterValidator(_canonical_uuid)]


class Message(BaseModel):
    """Base of every pipeline message: ids only, with a schema version."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    v: int = 1


class ParseRequested(Message):
    """Published to the ``parse`` topic once a version's object is in the bucket."""

    version_id: Id


class ChunkRequested(Message):
    """Published to the ``chunk`` topic once parsed JSON is in the work bucket."""

    version_id: Id


class EmbedTask(Message):
    """Body of an ``embed`` Cloud Task: embed chunks ``first_ordinal..last_ordinal``."""

    version_id: Id
    first_ordinal: int = Field(ge=0)
    last_ordinal: int = Field(ge=0)


class IndexRequested(Message):
    """Published to the ``index`` topic when a version has no chunk left to embed."""

    version_id: Id


# The lifecycle events written to the outbox (in the transaction making the change)
# and published on the lifecycle topic. Adding one is a line here plus a call to
# ``shared.pipeline.outbox.record_document_event`` (or ``record_version_event``) in
# the transaction that makes the change.
LIFECYCLE_EVENT_TYPES: tuple[str, ...] = (
    "version.ready",
    "version.failed",
    "version.superseded",
    "version.awaiting_approval",
    "document.approved",
    "document.archived",
    "document.unarchived",
    "document.deleted",
)


class DocumentLifecycleEvent(Message):
    """A lifecycle event, published to the ``lifecycle`` topic by the outbox relay.

    Sent when a version becomes ready, fails or is superseded, or a document is
    deleted. ``event_id`` is the outbox row's id: delivery is at least once, so consumers
    dedupe on it (it is also the message's ``event_id`` attribute). ``status`` is the
    version's status (``ready``, ``failed``, ``superseded``) or ``deleted``.
    """

    # 2 added the event's id, type, workspace, time and data (all optional, so a
    # version 1 reader ignores them and a version 1 message still validates).
    v: int = 2
    event_id: Id | None = None
    event_type: str | None = None
    workspace_id: Id | None = None
    document_id: Id
    version_id: Id | None = None
    knowledge_base_id: Id
    status: str
    error: str | None = None
    occurred_at: dt.datetime | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class WebhookTask(Message):
    """Body of a webhook delivery Cloud Task: deliver one outbox event to one webhook."""

    webhook_id: Id
    event_id: Id


class SyncTask(Message):
    """Body of a ``sync`` Cloud Task: one step of a source's sync run.

    ``key`` names the item to visit; without one the task lists the run's roots.
    """

    run_id: Id
    key: str | None = Field(None, max_length=4000)


def message_attributes(message: Message) -> dict[str, str]:
    """Attributes set on every published message: its type and the ids it names."""
    attributes = {"type": type(message).__name__, "schema_version": str(message.v)}
    for key in ("event_id", "event_type", "version_id", "document_id", "knowledge_base_id"):
        value = getattr(message, key, None)
        if value:
            attributes[key] = str(value)
    return attributes
