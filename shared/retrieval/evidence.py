"""What a question names, weighed as evidence about which documents it is about.

A question names subjects ("Apple"), periods ("the first quarter of fiscal 2023", "the
quarter ended July 1, 2023", "the latest 10-Q") and sometimes a document itself (its
file name or title). Each points at documents: a name at those whose profile (file
name, title, opening text) contains it, a period at those whose reporting period (read
from their cover) or file date is the one named, a file name at its document.

A name is *document-level* evidence only where the documents carrying it on their cover
are long beside it: a company's filings say "the Company" in their passages, so a
search for "Apple's net sales" finds every company's net sales unless it is narrowed
to Apple's filings. In a topical collection of abstracts the profile is the
text itself and the passages about "MRI" say "MRI", so full text finds them and a
filter would only drop relevant papers that do not spell it out; such names are left
to the chunk arms.

The evidence narrows the search hard only when it is unambiguous: a document named by
file name or title; a document-level name together with a period (or "latest",
"earliest", "the one before the latest") the name's documents have; a document-level
name alone. A period without a name (several subjects' filings share a quarter) is a
soft preference: a second search restricted to those documents is fused with the
unrestricted one, so it ranks their passages higher without hiding anything else.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.db.connection import Session
from shared.periods import MONTHS, ReportingPeriod
from shared.retrieval.periods import Order, PeriodAsk, asks_range, order_asked, period_asks
from shared.retrieval.query import named_terms
from shared.store import search as store
from shared.store.scope import ScopeSql
from shared.store.search import DocumentFacts

# A name is evidence only if at most this share of the documents in scope carry it in
# their profile: a word every document's title page has ("Form", "Inc") says nothing.
NAME_MAX_SHARE = 0.5
# A name is about whole documents (not a topic their passages discuss) if its documents
# are long beside the profile that names them, at least this many chunks each on
# average: a profile is a document's opening, so in a one- or two-chunk abstract it is
# the text itself (full text already sees the name there), while in a filing of many
# chunks it is the cover, and a name on the cover is the filing's subject.
DOCUMENT_LEVEL_MIN_CHUNKS = 4


@dataclass
class Evidence:
    """Which documents a question points at, and how firmly.

    Attributes:
        narrow_to: Search only these documents (None: no unambiguous evidence).
        prefer: Rank these documents' passages higher, fused with the whole scope
            (None: no preference).
        names: The names the question mentions.
        document_names: Those that are document-level evidence.
        periods: The periods the question names, as written.
        order: The position asked for ("latest"), if any.
        routing: The knowledge bases' routing (``auto``, ``names`` or ``off``).
        chunks: The chunks of each document weighed (by id), so a search narrowed
            to them knows its size.
    """

    narrow_to: list[str] | None = None
    prefer: list[str] | None = None
    names: list[str] = field(default_factory=list)
    document_names: list[str] = field(default_factory=list)
    periods: list[str] = field(default_factory=list)
    order: Order | None = None
    routing: str = "auto"
    chunks: dict[str, int] = field(default_factory=dict)


def period_of(facts: DocumentFacts) -> ReportingPeriod | None:
    """The reporting period a document states, if it states one."""
    if facts.period_end is None:
        return None
    return ReportingPeriod(
        facts.period_end, facts.period_months or 3, facts.fiscal_year_end_month or 12
    )


def _when(facts: DocumentFacts) -> dt.date:
    """A document's place in time: its period's end, else its file's date."""
    return facts.period_end or facts.source_date or dt.date.min


def matching_periods(
    documents: Sequence[DocumentFacts], asks: Sequence[PeriodAsk], span: bool
) -> list[DocumentFacts]:
    """The documents whose period (or file date) is one the question names.

    With ``span`` ("between Q1 and Q3") and two or more periods matched, the documents
    whose period ends between the earliest and the latest of them count too.
    """
    found = [d for d in documents if any(a.matches(period_of(d), d.source_date) for a in asks)]
    if span and len(asks) >= 2 and found:
        first, last = min(map(_when, found)), max(map(_when, found))
        found = [d for d in documents if d in found or first <= _when(d) <= last]
    return found


def pick(documents: Sequence[DocumentFacts], order: Order) -> list[DocumentFacts]:
    """The newest, oldest or second newest of one subject's documents (ties kept)."""
    moments = sorted({_when(d) for d in documents}, reverse=True)
    if not moments:
        return []
    if order is Order.LATEST:
        wanted = moments[0]
    elif order is Order.EARLIEST:
        wanted = moments[-1]
    else:
        wanted = moments[1] if len(moments) > 1 else moments[0]
    return [d for d in documents if _when(d) == wanted]


def _ids(documents: Sequence[DocumentFacts]) -> list[str]:
    return list(dict.fromkeys(d.id for d in documents))


def weigh(session: Session, scope: ScopeSql, question: str) -> Evidence:
    """Weigh what ``question`` names against the documents in ``scope``.

    Args:
        session: A database session.
        scope: The compiled scope of the search.
        question: The question.

    Returns:
        The documents to narrow to or prefer, and what the question named.
    """
    # Month names are periods here, not subjects ("the quarter ended September 30").
    names = [name for name in named_terms(question) if name.lower() not in MONTHS]
    asks = period_asks(question)
    order = order_asked(question)
    evidence = Evidence(names=names, periods=[a.text for a in asks], order=order)
    documents = store.document_facts(session, scope, names, question, bool(asks or order))
    evidence.chunks = {d.id: d.chunks for d in documents}
    if documents:
        evidence.routing = documents[0].routing
    if not documents or evidence.routing != "auto" or documents[0].in_scope < 2:
        return evidence
    named = [d for d in documents if d.named]
    if named:
        evidence.narrow_to = _ids(named)
        return evidence
    in_scope = documents[0].in_scope
    groups: list[list[DocumentFacts]] = []
    for name in names:
        carrying = [d for d in documents if name in d.matched]
        if not carrying or len(carrying) > NAME_MAX_SHARE * in_scope:
            continue
        if sum(d.chunks for d in carrying) >= DOCUMENT_LEVEL_MIN_CHUNKS * len(carrying):
            evidence.document_names.append(name)
            groups.append(carrying)
    dated = matching_periods(documents, asks, asks_range(question)) if asks else []
    if groups:
        subject = {d.id: d for group in groups for d in group}
        both = [d for d in dated if d.id in subject]
        if both:
            evidence.narrow_to = _ids(both)
        elif order is not None and not asks:
            evidence.narrow_to = _ids([d for group in groups for d in pick(group, order)])
        else:
            evidence.narrow_to = _ids(list(subject.values()))
    elif dated and len(dated) < in_scope:
        evidence.prefer = _ids(dated)
    return evidence
