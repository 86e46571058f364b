"""Reading a question: its search terms, the names it mentions, whether it asks for the latest.

Everything here is pure string work, so the SQL layer only ever receives terms that
are plain words (no tsquery syntax from users reaches PostgreSQL unescaped).
"""

from __future__ import annotations

import re

# Words of two or more letters/digits, keeping inner apostrophes and hyphens ("10-Q").
_WORD = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9'\u2019\-]*[A-Za-z0-9])?")
_POSSESSIVE = re.compile(r"['\u2019]s?$", re.IGNORECASE)
# Only quotes, brackets and spaces since the start or the end of a sentence.
_SENTENCE_START = re.compile(r"(?:^|[.?!:;]\s)[\s\"'\u201c\u2018(\[]*$")

# Capitalised words that open a question or sentence without naming anything
# (a word list reads better as one string than as 150 quoted items).
_NOT_NAMES = frozenset(
    """
    a an the and or but if in on at of for to from by with about into over under after
    before during between since until within without per as is are was were be been has
    have had do does did can could will would should may might must shall what which
    who whom whose when where why how whether please list give show tell explain
    describe summarize summarise compare examine identify provide find name state
    discuss analyze analyse evaluate assess outline consider based according i we you
    they he she it this that these those there here any all each every some most more
    less many much other also overall total yes no not q1 q2 q3 q4 fy
    """.split()  # noqa: SIM905
)

# Phrases asking about the newest document rather than all of them.
_LATEST = re.compile(
    r"\b(latest|most recent|newest|last (?:quarter|report|filing|10-?[qk])|current (?:quarter"
    r"|report|filing))\b",
    re.IGNORECASE,
)


def words(text: str) -> list[str]:
    """The words of ``text``, in order, possessives removed ("Apple's" -> "Apple")."""
    found = (_POSSESSIVE.sub("", match.group(0)) for match in _WORD.finditer(text))
    return [word for word in found if word]


def or_query_terms(text: str, limit: int = 32) -> list[str]:
    """Distinct lower-cased words for an OR full-text query.

    Stop words are left to PostgreSQL's dictionary, which drops them.
    """
    seen: dict[str, None] = {}
    for word in words(text):
        seen.setdefault(word.lower(), None)
    return list(seen)[:limit]


def named_terms(question: str) -> list[str]:
    """Capitalised words that likely name something: a company, product, person, ticker.

    "How has Apple's net income changed?" -> ["Apple"]. Question words and other
    sentence openers are skipped; false positives are cheap because a name only routes
    a search if some, but not most, documents' profiles contain it.
    """
    names: dict[str, None] = {}
    for match in _WORD.finditer(question):
        raw = match.group(0)
        word = _POSSESSIVE.sub("", raw)
        if len(word) < 2 or not word[0].isupper() or word.lower() in _NOT_NAMES:
            continue
        # A capitalised sentence opener ("Revenue grew?") is usually just a word; it
        # counts as a name only if possessive ("Apple's") or all capitals ("AMZN").
        opener = _SENTENCE_START.search(question[: match.start()]) is not None
        if opener and raw == word and not word.isupper():
            continue
        names.setdefault(word, None)
    return list(names)


def wants_latest(question: str) -> bool:
    """True if the question asks about the newest document ("latest", "most recent")."""
    return _LATEST.search(question) is not None
