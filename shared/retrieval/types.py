"""What retrieval hands to the stages after it: ranked passages.

Answering imports :class:`Passage` from here; retrieval imports nothing of answering.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk of an active, ready document version.

    Attributes:
        chunk_id: ``chunks.id``.
        document_id, version_id, kb_id: Where the chunk lives.
        filename: The document's file name; ``title`` its declared title, if any.
        text: The chunk's text.
        page_start, page_end: 1-based page span (None for unpaged formats).
        char_start, char_end: Offsets of ``text`` in the parsed document's text.
        heading_path: Section headings above the chunk, outermost first.
        score: The fused relevance score (higher is better; see ``shared.retrieval``).
        vector_score: Cosine similarity to the query (None if not a vector hit).
        text_score: Full-text rank (None if not a full-text hit).
    """

    chunk_id: int
    document_id: str
    version_id: str
    kb_id: str
    filename: str
    title: str | None
    text: str
    page_start: int | None
    page_end: int | None
    char_start: int
    char_end: int
    heading_path: tuple[str, ...]
    score: float
    vector_score: float | None = None
    text_score: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The passage as a JSON object."""
        body = asdict(self)
        body["heading_path"] = list(self.heading_path)
        return body
