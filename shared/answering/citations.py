"""Citation markers: parse ``[n]``, drop the invalid ones, map the rest to passages.

An answer cites the numbered sources of its prompt as ``[n]``, ``[n, m]`` or
``[n][m]``. A marker is *valid* when it points at a passage that was actually given
to the model; anything else (a number past the last source, a source cut by the
context budget, ``[0]``) is removed, never repaired or invented. :class:`CitationFilter`
does this on the fly while an answer streams; :func:`build_citations` turns the valid
markers of the final text into :class:`~shared.answering.types.Citation` objects.

The small lexical helpers (sentences, content words) live here because snippets need
them first; the extractive answerer and the query rewriter reuse them.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Collection, Iterable, Sequence

from shared.answering.support import check_support
from shared.answering.types import Citation, Passage

SNIPPET_CHARS = 300
"""Longest snippet (ellipses included) a citation carries."""

# One marker group: "[3]", "[1, 4]", "[ 2 ,5 ]". Adjacent groups ("[1][2]") are
# separate matches. The horizontal whitespace before a group is captured so that
# dropping an invalid marker does not leave "claim ." behind.
_GROUP = re.compile(r"(?P<space>[ \t]*)\[\s*(?P<numbers>\d+(?:\s*,\s*\d+)*)\s*\]")

# A tail that may still become a marker group once more text arrives.
_PARTIAL_TAIL = re.compile(r"[ \t]*\[[\d\s,]*\Z")
_TRAILING_SPACE = re.compile(r"[ \t]+\Z")

# Longest tail held back: a real marker group is far shorter, and holding more would
# stall the stream on text such as "[" followed by a long run of digits.
_MAX_HOLD = 48


def _numbers(group: str) -> list[int]:
    return [int(part) for part in group.split(",")]


def _rewrite_groups(text: str, valid: Collection[int]) -> str:
    """Drop invalid numbers from every complete marker group of ``text``."""

    def replace(match: re.Match[str]) -> str:
        numbers = _numbers(match["numbers"])
        kept = list(dict.fromkeys(n for n in numbers if n in valid))
        if kept == numbers:
            return match.group(0)  # untouched: keep the model's own spacing
        if not kept:
            return ""  # the whole group goes, with the space before it
        return f"{match['space']}[{', '.join(map(str, kept))}]"

    return _GROUP.sub(replace, text)


def filter_markers(text: str, valid: Collection[int]) -> str:
    """Return ``text`` with every marker that does not point into ``valid`` removed.

    Numbers are removed from a group one by one (``[1, 9]`` becomes ``[1]``); a group
    left empty disappears with the spaces before it. This is exactly what a
    :class:`CitationFilter` fed the whole text produces.

    Args:
        text: An answer.
        valid: The passage numbers that were given to the model.
    """
    return _rewrite_groups(text, frozenset(valid))


def cited_numbers(text: str, valid: Collection[int] | None = None) -> list[int]:
    """Return the passage numbers ``text`` cites, in first-cited order, without repeats.

    Args:
        text: An answer.
        valid: If given, numbers outside it are skipped.
    """
    seen: dict[int, None] = {}
    for match in _GROUP.finditer(text):
        for number in _numbers(match["numbers"]):
            if valid is None or number in valid:
                seen.setdefault(number)
    return list(seen)


class CitationFilter:
    """Removes invalid citation markers from a streamed answer as it arrives.

    Text is released as soon as it cannot be part of a marker group: only a trailing
    run of spaces and a possibly-incomplete trailing ``[...`` (at most a few dozen
    characters) are held back until the next delta, so tokens keep streaming promptly.

    Example::

        f = CitationFilter({1, 2})
        f.feed("Sales rose [") + f.feed("7]. Costs fell [2].") + f.flush()
        # -> "Sales rose. Costs fell [2]."

    Args:
        valid_numbers: The passage numbers that were given to the model.
    """

    def __init__(self, valid_numbers: Iterable[int]) -> None:
        self.valid: frozenset[int] = frozenset(valid_numbers)
        self._pending = ""

    def feed(self, delta: str) -> str:
        """Add a delta of the answer; return the text that is now safe to emit."""
        text = self._pending + delta
        if "[" not in text:
            # The usual delta: no marker can start in it, only trailing spaces are held
            # (what the general path below does for such text, without its regexes).
            ready = text.rstrip(" \t")
            self._pending = text[len(ready) :]
            return ready
        hold = len(text)
        partial = _PARTIAL_TAIL.search(text)
        if partial is not None and len(text) - partial.start() <= _MAX_HOLD:
            hold = partial.start()
        else:
            # Spaces are held too: if an invalid marker follows, they go with it.
            space = _TRAILING_SPACE.search(text)
            if space is not None:
                hold = space.start()
        ready, self._pending = text[:hold], text[hold:]
        return _rewrite_groups(ready, self.valid)

    def flush(self) -> str:
        """Return whatever is still held back (call once the answer has ended)."""
        text, self._pending = self._pending, ""
        return _rewrite_groups(text, self.valid)


# -- lexical helpers -----------------------------------------------------------------

STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    else ever few for from further get got had has have having he her here hers herself
    him himself his how i if in into is it its itself just let me more most much must my
    myself no nor not now of off on once only or other ought our ours ourselves out over
    own per please same shall she should so some such tell than that the their theirs them
    themselves then there these they this those through to too under until up upon us
    very was we were what whatever when where whether which while who whom whose why will
    with within without would yes yet you your yours yourself yourselves
    """.split()  # noqa: SIM905 - a word list reads best as text
)
"""English function words and question words, ignored when matching text."""

# Words keep inner apostrophes, dots, hyphens ("Apple's", "U.S.", "10-Q", "3.5").
_WORD = re.compile(r"\w+(?:['\u2019.\-]\w+)*")

# Candidate sentence ends: terminal punctuation (plus closing quotes or brackets)
# followed by space, or a blank line. Single newlines are usually PDF line wraps.
_SENTENCE_END = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*\s+|\n\s*\n")
_ABBREVIATIONS = frozenset(
    "inc corp co ltd llc mr mrs ms dr no nos vs e.g i.e u.s etc jr sr st fig approx dept".split()  # noqa: SIM905
)


def words(text: str) -> list[str]:
    """Return the words of ``text`` in order, in their original form."""
    return _WORD.findall(text)


def content_words(text: str) -> list[str]:
    """Return the words of ``text`` that are not :data:`STOPWORDS`, in original form."""
    return [word for word in words(text) if word.lower() not in STOPWORDS]


def normalize_term(word: str) -> str:
    """Lower-case ``word`` and strip a possessive and a plural, so forms match.

    A deliberately tiny stemmer: it only needs "revenues" to meet "revenue" and
    "Apple's" to meet "Apple", not linguistic accuracy.
    """
    term = word.lower().replace("\u2019", "'")
    if term.endswith("'s"):
        term = term[:-2]
    if len(term) > 4 and term.isalpha():
        if term.endswith("ies"):
            term = term[:-3] + "y"
        elif term.endswith("s") and not term.endswith(("ss", "us", "is")):
            term = term[:-1]
    return term


@functools.lru_cache(maxsize=1 << 14)
def _term(word: str) -> str:
    """``normalize_term(word)``, or "" for a stop word (words recur: cached)."""
    return "" if word.lower() in STOPWORDS else normalize_term(word)


def terms(text: str) -> list[str]:
    """Return the normalised content words of ``text`` (for lexical matching)."""
    # A normalised word is never empty (a word starts with \w), so "" marks stop words.
    return list(filter(None, map(_term, _WORD.findall(text))))


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Return the ``(start, end)`` spans of the sentences of ``text``, stripped.

    A period after a common abbreviation ("Inc.", "U.S.") or a single capital letter
    does not end a sentence.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if match.group(0)[0] == ".":  # only a period may follow an abbreviation
            before = text[start : match.start()].rsplit(None, 1)
            last = before[-1].lower().rstrip(".") if before else ""
            if last in _ABBREVIATIONS or len(last) == 1:
                continue
        _append_span(spans, text, start, match.start() + len(match.group(0).rstrip()))
        start = match.end()
    _append_span(spans, text, start, len(text))
    return spans


def _append_span(spans: list[tuple[int, int]], text: str, start: int, end: int) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if stripped:
        offset = start + len(piece) - len(piece.lstrip())
        spans.append((offset, offset + len(stripped)))


def _squash(text: str) -> str:
    """Collapse whitespace runs (PDF line breaks) into single spaces."""
    return " ".join(text.split())


def clip(text: str, max_chars: int) -> str:
    """Return ``text`` cut at a word boundary to at most ``max_chars``, ending in "…"."""
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1]
    space = cut.rfind(" ")
    if space > max_chars // 2:  # no boundary in the second half: cut mid-word instead
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"


# -- citations -----------------------------------------------------------------------


def best_snippet(text: str, claim: str, max_chars: int = SNIPPET_CHARS) -> str:
    """Return a short excerpt of ``text`` around the sentence that best supports ``claim``.

    Sentences are scored by the claim's content words they contain, rarer words of
    the passage counting more; ties go to the earlier sentence. The best sentence is
    extended with the ones after it while the excerpt stays within ``max_chars``.
    Without any overlap the excerpt is the passage's beginning.

    Args:
        text: The passage's text.
        claim: The answer's sentence(s) citing the passage.
        max_chars: Longest excerpt, ellipses included.
    """
    spans = split_sentences(text)
    if not spans:
        return ""
    wanted = set(terms(claim))
    sentence_terms = [set(terms(text[start:end])) for start, end in spans]
    best, best_score = 0, 0.0
    if wanted:
        frequency: dict[str, int] = {}
        for found in sentence_terms:
            for term in found & wanted:
                frequency[term] = frequency.get(term, 0) + 1
        for index, found in enumerate(sentence_terms):
            score = sum(1.0 + math.log(len(spans) / frequency[t]) for t in found & wanted)
            if score > best_score:
                best, best_score = index, score
    last = best
    while (
        last + 1 < len(spans)
        and len(_squash(text[spans[best][0] : spans[last + 1][1]])) + 2 <= max_chars
    ):
        last += 1
    start, end = spans[best][0], spans[last][1]
    prefix = "…" if start > spans[0][0] else ""
    excerpt = _squash(text[start:end])
    more = end < spans[-1][1]
    room = max_chars - len(prefix)
    if len(excerpt) + more > room:
        excerpt = clip(excerpt, room)  # ends in "…"
    elif more:
        excerpt += "…"
    return prefix + excerpt


def _claims(answer: str) -> dict[int, list[str]]:
    """Map each cited number to the answer sentences that cite it."""
    claims: dict[int, list[str]] = {}
    for match in _GROUP.finditer(answer):
        # The claim is the last sentence before the marker, markers removed; if the
        # marker opens a sentence ("... rose. [1]"), the sentence before it. A claim
        # never reaches past a line break: an answer's lines are list items or table
        # rows, each citing its own source.
        before = _GROUP.sub(" ", answer[max(0, match.start() - 600) : match.start()])
        lines = [line for line in before.split("\n") if line.strip()]
        before = lines[-1] if lines else ""
        spans = split_sentences(before)
        claim = before[spans[-1][0] : spans[-1][1]] if spans else ""
        for number in _numbers(match["numbers"]):
            claims.setdefault(number, []).append(claim)
    return claims


def build_citations(
    answer: str,
    passages: Sequence[Passage],
    valid: Collection[int] | None = None,
    *,
    snippet_chars: int = SNIPPET_CHARS,
) -> list[Citation]:
    """Return the citations of ``answer``: one per valid cited passage, first-cited first.

    Args:
        answer: The generated answer, with ``[n]`` markers.
        passages: The request's passages; passage ``n`` is ``passages[n - 1]``.
        valid: The numbers given to the model (see ``Prompt.included``); defaults to
            every passage. Markers outside it, or past the last passage, are ignored.
        snippet_chars: Longest snippet.

    Returns:
        :class:`Citation` objects, deduplicated, in the order their markers first
        appear; never one for a passage the model was not given. Each carries its
        support check (``shared.answering.support``): whether the passage contains the
        citing sentences' words and numbers.
    """
    allowed = set(range(1, len(passages) + 1))
    if valid is not None:
        allowed &= set(valid)
    claims = _claims(answer)
    citations = []
    for number in cited_numbers(answer, allowed):
        passage = passages[number - 1]
        citations.append(
            Citation(
                n=number,
                chunk_id=passage.chunk_id,
                document_id=passage.document_id,
                version_id=passage.version_id,
                kb_id=passage.kb_id,
                filename=passage.filename,
                title=passage.title,
                page_start=passage.page_start,
                page_end=passage.page_end,
                char_start=passage.char_start,
                char_end=passage.char_end,
                score=passage.score,
                snippet=best_snippet(passage.text, " ".join(claims[number]), snippet_chars),
                support=check_support(claims[number], passage.text, terms),
            )
        )
    return citations
