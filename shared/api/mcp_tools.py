"""What the MCP endpoint's tools do, as plain functions of the runtime and the caller.

The tools are the HTTP API's reads under another protocol, with the same access rule:
knowledge bases resolve through :func:`shared.api.access.require_kb` (anything the
caller may not read is "not found"), searches and answers run through the same
retrieval scope and the same entry into answering as ``/v1/retrieve`` and ``/v1/ask``,
and a document's text is read through the retrieval scope (active, unarchived versions
of readable knowledge bases only). ``shared.api.mcp_server`` exposes them over MCP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from shared.answering.service import Question, collect, retrieve_for
from shared.api.access import readable_knowledge_bases, reader_scope, require_document, require_kb
from shared.api.answer import MAX_KNOWLEDGE_BASES, MAX_TOP_K, question_text, start_answer
from shared.auth import Principal
from shared.documents import get_document as document_detail
from shared.errors import InvalidInputError, NotFoundError
from shared.ids import is_uuid
from shared.runtime import Runtime
from shared.store.citations import document_spans, document_text_end
from shared.store.scope import compile_scope

SNIPPET_CHARS = 600
DEFAULT_DOCUMENT_CHARS = 20_000
MAX_DOCUMENT_CHARS = 100_000


class KnowledgeBaseInfo(BaseModel):
    """A knowledge base the caller can read."""

    id: str
    name: str
    description: str


class KnowledgeBases(BaseModel):
    """Result of ``list_knowledge_bases``."""

    knowledge_bases: list[KnowledgeBaseInfo]


class RankedPassage(BaseModel):
    """One passage of a search, best first."""

    rank: int
    chunk_id: int
    document_id: str
    kb_id: str
    filename: str
    title: str | None
    page_start: int | None
    page_end: int | None
    heading_path: list[str]
    score: float
    snippet: str


class SearchResult(BaseModel):
    """Result of ``search``."""

    query: str
    passages: list[RankedPassage]


class Answer(BaseModel):
    """Result of ``ask``: the answer with its ``[n]`` markers and checked citations."""

    answer: str
    citations: list[dict[str, Any]]
    unsupported_citations: int
    turn_id: str
    session_id: str


class DocumentText(BaseModel):
    """Result of ``get_document``: the document's detail and a window of its text."""

    document: dict[str, Any]
    text: str
    offset: int
    length: int = Field(description="characters of visible text in the whole document")
    next_offset: int | None = Field(description="where the next window starts; None at the end")


def _kb_ids(runtime: Runtime, principal: Principal, refs: Sequence[str] | None) -> list[str]:
    """The knowledge bases asked for (ids or names), or every readable one if none."""
    database = runtime.database
    if refs:
        if len(refs) > MAX_KNOWLEDGE_BASES:
            raise InvalidInputError(
                f"at most {MAX_KNOWLEDGE_BASES} knowledge bases per call", code="invalid_parameter"
            )
        return list(dict.fromkeys(require_kb(database, ref, principal).id for ref in refs))
    readable = [kb.id for kb in readable_knowledge_bases(database, principal)]
    if not readable:
        raise NotFoundError("no knowledge base to search", code="knowledge_base_not_found")
    if len(readable) > MAX_KNOWLEDGE_BASES:
        raise InvalidInputError(
            f"you can read {len(readable)} knowledge bases; name at most {MAX_KNOWLEDGE_BASES}",
            code="invalid_parameter",
        )
    return readable


def list_knowledge_bases(runtime: Runtime, principal: Principal) -> KnowledgeBases:
    """The knowledge bases of the caller's workspace they may read."""
    return KnowledgeBases(
        knowledge_bases=[
            KnowledgeBaseInfo(id=kb.id, name=kb.name, description=kb.description)
            for kb in readable_knowledge_bases(runtime.database, principal)
        ]
    )


def _question(
    runtime: Runtime, principal: Principal, text: str, refs: Sequence[str] | None, top_k: int
) -> Question:
    settings = runtime.settings
    return Question(
        text=question_text(settings, text),
        kb_ids=_kb_ids(runtime, principal, refs),
        top_k=top_k,
        min_similarity=settings.answer_min_similarity,
    )


def search(
    runtime: Runtime,
    principal: Principal,
    query: str,
    knowledge_base_ids: Sequence[str] | None = None,
    top_k: int | None = None,
) -> SearchResult:
    """Ranked passages for ``query`` (hybrid retrieval, as ``/v1/retrieve``).

    Raises:
        NotFoundError: A knowledge base named is not one the caller may read.
        InvalidInputError: An empty or oversized query, or ``top_k`` out of range.
    """
    k = runtime.settings.answer_top_k if top_k is None else top_k
    if not 1 <= k <= MAX_TOP_K:
        raise InvalidInputError(
            f"top_k must be between 1 and {MAX_TOP_K}", code="invalid_parameter"
        )
    question = _question(runtime, principal, query, knowledge_base_ids, k)
    found = retrieve_for(runtime, principal, question)
    return SearchResult(
        query=question.text,
        passages=[
            RankedPassage(
                rank=rank,
                chunk_id=passage.chunk_id,
                document_id=passage.document_id,
                kb_id=passage.kb_id,
                filename=passage.filename,
                title=passage.title,
                page_start=passage.page_start,
                page_end=passage.page_end,
                heading_path=list(passage.heading_path),
                score=passage.score,
                snippet=passage.text[:SNIPPET_CHARS],
            )
            for rank, passage in enumerate(found.passages, start=1)
        ],
    )


def ask(
    runtime: Runtime,
    principal: Principal,
    question: str,
    knowledge_base_ids: Sequence[str] | None = None,
) -> Answer:
    """A grounded answer with citations, stored as a turn like ``/v1/ask``'s.

    Raises:
        NotFoundError: A knowledge base named is not one the caller may read.
        UpstreamError: The model failed.
    """
    asked = _question(
        runtime, principal, question, knowledge_base_ids, runtime.settings.answer_top_k
    )
    done = collect(start_answer(runtime, principal, asked))
    return Answer(
        answer=done["answer"],
        citations=done["citations"],
        unsupported_citations=done["unsupported_citations"],
        turn_id=done["turn_id"],
        session_id=done["session_id"],
    )


def get_document(
    runtime: Runtime,
    principal: Principal,
    document_id: str,
    offset: int = 0,
    max_chars: int = DEFAULT_DOCUMENT_CHARS,
) -> DocumentText:
    """A document's detail and up to ``max_chars`` of its text from ``offset``.

    The text is the active version's, as retrieval reads it (chunks joined where they
    overlap); an archived document has none.

    Raises:
        NotFoundError: No such document in a knowledge base the caller may read.
        InvalidInputError: ``offset`` or ``max_chars`` out of range.
    """
    if offset < 0 or not 1 <= max_chars <= MAX_DOCUMENT_CHARS:
        raise InvalidInputError(
            f"offset must be >= 0 and max_chars between 1 and {MAX_DOCUMENT_CHARS}",
            code="invalid_parameter",
        )
    database = runtime.database
    missing = NotFoundError(f"document {document_id!r} not found", code="document_not_found")
    if not is_uuid(document_id):
        raise missing
    kb_id = require_document(database, document_id, principal)
    detail = document_detail(database, document_id)
    if detail is None:
        raise missing
    end = offset + max_chars
    scope = compile_scope(reader_scope(principal, [kb_id]))
    pieces, position = [], offset
    for span in document_spans(database, scope, document_id, offset, end):
        # Chunks overlap: take each one from where the text so far ends.
        begin, stop = max(position, span.char_start), min(end, span.char_end)
        if stop > begin:
            pieces.append(span.text[begin - span.char_start : stop - span.char_start])
            position = stop
    length = document_text_end(database, scope, document_id)
    # A window with no text (a gap between chunks) still moves the reader on.
    reached = position if pieces else end
    return DocumentText(
        document=detail,
        text="".join(pieces),
        offset=offset,
        length=length,
        next_offset=reached if reached < length else None,
    )
