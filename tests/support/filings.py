"""Synthetic per-company filings: the same revenue paragraphs, the name only on the cover."""

from __future__ import annotations

COMPANIES = ("Acme", "Globex", "Initech")


def filing(company: str) -> bytes:
    """A Markdown filing of ``company``.

    Every filing reports revenue in the same words: only the name tells them apart, and
    it stands on the cover, not in the paragraphs a revenue question matches.
    """
    cover = f"# {company} Corporation quarterly report\n\nFiled by {company} Corporation.\n\n"
    body = "\n\n".join(
        f"Revenue for the quarter grew {n} percent on higher product sales and services."
        for n in range(1, 9)
    )
    return (cover + body).encode()
