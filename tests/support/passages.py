"""Retrieved passages made by hand, for tests of what consumes them."""

from __future__ import annotations

from shared.retrieval.types import Passage


def passage(n: int, text: str, *, filename: str | None = None, score: float = 1.0) -> Passage:
    """Passage ``n`` of its own document ``d<n>`` (file ``f<n>.pdf`` unless given)."""
    return Passage(
        chunk_id=n,
        document_id=f"d{n}",
        version_id=f"v{n}",
        kb_id="kb",
        filename=filename or f"f{n}.pdf",
        title=None,
        text=text,
        page_start=1,
        page_end=1,
        char_start=0,
        char_end=len(text),
        heading_path=(),
        score=score,
    )
