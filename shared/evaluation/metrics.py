"""The evaluation's metrics, as pure functions of ids, names and texts.

Relevance is by document: a document is expected when its file name matches one of the
question's globs. Rankings are of distinct documents in the order retrieval first
returned a passage of each.
"""

from __future__ import annotations

import fnmatch
import math
import re
import string
from collections import Counter
from collections.abc import Collection, Iterable, Sequence

# Citation markers are not words of the answer.
_MARKER = re.compile(r"\[\s*\d+(?:\s*,\s*\d+)*\s*\]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def matches_any(filename: str, globs: Iterable[str]) -> bool:
    """Whether ``filename`` matches one of ``globs`` (case-insensitive).

    A glob without a wildcard also matches the file name without its extension, so
    ``2023 Q3 AAPL`` names ``2023 Q3 AAPL.pdf``.
    """
    name = filename.lower()
    stem = name.rsplit(".", 1)[0]
    for glob in globs:
        pattern = glob.strip().lower()
        if pattern and (fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(stem, pattern)):
            return True
    return False


def distinct(ids: Iterable[str]) -> list[str]:
    """``ids`` in order, each once."""
    return list(dict.fromkeys(ids))


def ndcg_at(ranked: Sequence[str], relevant: Collection[str], k: int = 10) -> float | None:
    """Binary nDCG@k of a ranking of distinct documents.

    Args:
        ranked: Document ids, best first, without repeats.
        relevant: The expected document ids.
        k: Cut-off.

    Returns:
        DCG / ideal DCG in [0, 1], or None without any relevant document.
    """
    if not relevant:
        return None
    dcg = sum(1.0 / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]) if doc in relevant)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(relevant), k)))
    return dcg / ideal


def recall_at(ranked: Sequence[str], relevant: Collection[str], k: int) -> float | None:
    """Share of the expected documents among the first ``k`` ranked (None without any)."""
    if not relevant:
        return None
    return len(set(ranked[:k]) & set(relevant)) / len(relevant)


def source_precision(cited: Collection[str], relevant: Collection[str]) -> float | None:
    """Share of the cited documents that are expected (None when nothing is cited)."""
    if not cited:
        return None
    return len(set(cited) & set(relevant)) / len(set(cited))


def source_recall(cited: Collection[str], relevant: Collection[str]) -> float | None:
    """Share of the expected documents the answer cites (None without any expected)."""
    if not relevant:
        return None
    return len(set(cited) & set(relevant)) / len(set(relevant))


def cites_only_expected(cited: Collection[str], relevant: Collection[str]) -> bool:
    """Whether the answer cites something and cites nothing but expected documents."""
    return bool(cited) and set(cited) <= set(relevant)


def answer_tokens(text: str) -> list[str]:
    """The tokens token F1 compares: lower case, no markers, punctuation or articles."""
    text = _MARKER.sub(" ", text).lower().translate(_PUNCTUATION)
    return _ARTICLES.sub(" ", text).split()


def token_f1(answer: str, reference: str) -> float | None:
    """Token F1 of ``answer`` against ``reference`` (SQuAD's; None without a reference)."""
    expected = answer_tokens(reference)
    if not expected:
        return None
    found = answer_tokens(answer)
    common = sum((Counter(found) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(found), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def unsupported_rate(supported: Sequence[bool]) -> float | None:
    """Share of citations not supported by their passage (None without citations)."""
    if not supported:
        return None
    return sum(not flag for flag in supported) / len(supported)


def mean(values: Iterable[float | bool | None]) -> float | None:
    """Mean of the defined values (None when none is)."""
    defined = [float(value) for value in values if value is not None]
    return sum(defined) / len(defined) if defined else None
