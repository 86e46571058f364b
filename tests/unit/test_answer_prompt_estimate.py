"""Golden results and invariants of the token estimate, truncation and prompt building.

The golden values were recorded from the estimator and prompt builder as they were
when the estimate was checked against a copy of the older, slower prompt module (each
passage estimated twice, piece by piece); that copy is gone, the results it vouched for
stay here. The random inputs use an alphabet chosen to hit every rule (letters, digits,
Unicode whitespace and digits, marks, emoji, lone and repeated spaces), random prose and
tables, and whole prompts with truncation and history, with the default estimator and
with injected ones. A digest covers a whole seeded run; a change to any one result
changes it. If a change to the estimate is intended, record new values and say why.
"""

from __future__ import annotations

import hashlib
import json
import random
import re

import pytest

from shared.answering import prompt, token_estimate
from shared.answering.token_estimate import estimate_tokens, pieces_join
from shared.answering.types import Exchange, GenerationRequest, Passage
from shared.errors import LimitExceededError
from shared.tokens import utf8_bound

ALPHABET = [
    *"abcXYZ09 .,;:!?()[]$%_-'\"",
    *"  \t\n\r\x0b\x0c\x1c\x1f\x00\x7f",
    "é", "ß", "中", "Ω", "ǅ", "²", "½", "\u0301",  # letters, numbers that are not digits, a mark
    "\u00a0", "\u2003", "\u2028", "\u3000", "\x85",  # non-ASCII whitespace
    "٣", "\uff11", "\u07c0",  # non-ASCII decimal digits
    "\u2019", "—", "•", "€", "😀",
]  # fmt: skip

WORDS = [
    "revenue",
    "increased",
    "the",
    "12.5%",
    "$4,210",
    "(3)",
    "Apple\u2019s",
    "naïve",
    "2024-03-31",
]


def random_text(rng: random.Random, length: int) -> str:
    pool = rng.sample(ALPHABET, rng.randint(1, len(ALPHABET)))
    return "".join(rng.choice(pool) for _ in range(length))


def random_prose(rng: random.Random, count: int) -> str:
    separators = [" "] * 12 + ["\n", "  ", "\n\n", " \n", "\t", "\u00a0"]
    return "".join(rng.choice(WORDS) + rng.choice(separators) for _ in range(count)).strip()


def digest(values: object) -> str:
    """A short, stable fingerprint of JSON-serialisable results."""
    return hashlib.sha256(json.dumps(values, ensure_ascii=False).encode()).hexdigest()[:16]


GOLDEN_COUNTS = {
    "": 0,
    " ": 0,
    "  ": 1,
    "\t": 1,
    "\n\n": 1,
    "the": 1,
    "revenue": 2,
    "increased": 3,
    "Revenue increased 12.5% to $4,210 million.": 17,
    "12.3 (4.5)": 8,
    "1234567": 3,
    "2024-03-31": 6,
    "na\u00efve caf\u00e9": 11,
    "Apple\u2019s": 6,
    "\u4e2d\u6587\u6587\u672c": 12,
    "\U0001f600": 4,
    "a\u00a0b": 4,
    "x  y": 3,
    "\u2003\u3000": 6,
    "Item 2. Management\u2019s Discussion and Analysis": 16,
    "$(393)  117,154  12.5%": 13,
    "\u0663\u0664\u0665": 6,
    "\u01c5ungla": 7,
    "\u0301e": 3,
    "\r\n": 1,
}

GOLDEN = {
    "random_0": "11451c3ed27163d7",
    "random_1": "6315e9f37f5a3ada",
    "random_2": "680b279e63478812",
    "random_3": "a4702ea4c213380b",
    "prose_0": "5a7e15b8e6a79ecc",
    "prose_1": "4f68bef8d119ed63",
    "prose_2": "e71bc8fa1a3fb352",
    "prose_3": "b795187c11047459",
    "truncate_0": "6940442ddfa4bdc0",
    "truncate_1": "eadc26b0af6ba996",
    "truncate_2": "7f9544fe625a0b71",
    "prompt_default_0": "0173efc5f75cdfe5",
    "prompt_default_1": "82ee43ad2b9a1001",
    "prompt_default_2": "5a9c4270d890db16",
    "prompt_utf8_bound_0": "a11c5c2df3d34de0",
    "prompt_utf8_bound_1": "910323c01210b5d8",
    "prompt_utf8_bound_2": "5276138c463d6c38",
    "prompt_len_0": "e8f8ebc85f3a950b",
    "prompt_len_1": "30f6b9408eedbda1",
    "prompt_len_2": "9f0c1cd3db832772",
    "prompt_not_additive_0": "e8f9afb8e43df40b",
    "prompt_not_additive_1": "68d83cf22fb09584",
    "prompt_not_additive_2": "e581232a3c8d9e78",
}


@pytest.mark.parametrize(("text", "tokens"), GOLDEN_COUNTS.items())
def test_golden_token_counts(text: str, tokens: int) -> None:
    assert estimate_tokens(text) == tokens


@pytest.mark.parametrize("seed", range(4))
def test_estimate_on_random_strings_matches_the_golden_run(seed: int) -> None:
    rng = random.Random(seed)
    counts = [estimate_tokens(random_text(rng, rng.randint(0, 40))) for _ in range(5000)]
    assert digest(counts) == GOLDEN[f"random_{seed}"]


@pytest.mark.parametrize("seed", range(4))
def test_estimate_on_prose_and_tables_matches_the_golden_run(seed: int) -> None:
    rng = random.Random(seed)
    counts = [estimate_tokens(random_prose(rng, rng.randint(1, 400))) for _ in range(200)]
    assert digest(counts) == GOLDEN[f"prose_{seed}"]


@pytest.mark.parametrize("seed", range(3))
def test_estimate_invariants(seed: int) -> None:
    rng = random.Random(100 + seed)
    for _ in range(2000):
        text = random_text(rng, rng.randint(0, 30))
        counts = [estimate_tokens(text[:end]) for end in range(len(text) + 1)]
        # Never negative, and a longer prefix never costs less.
        assert counts[0] == 0 and counts == sorted(counts), repr(text)
        # One token per UTF-8 byte is provably enough: the estimate stays within it.
        assert counts[-1] <= utf8_bound(text), repr(text)
        # Split where no piece spans the junction, the parts' estimates add up.
        cut = rng.randint(0, len(text))
        left, right = text[:cut], text[cut:]
        if not pieces_join(left, right):
            assert counts[-1] == estimate_tokens(left) + estimate_tokens(right), (left, right)


def test_junctions_that_split_pieces_are_detected() -> None:
    # The sum of two estimates is used only when no piece spans the junction.
    rng = random.Random(7)
    for _ in range(20000):
        left, right = random_text(rng, rng.randint(0, 6)), random_text(rng, rng.randint(0, 6))
        tokens = prompt._joined_tokens(
            [(left, estimate_tokens(left)), (right, estimate_tokens(right))],
            estimate_tokens,
        )
        assert tokens == estimate_tokens(left + right), (left, right)


def _truncation_inputs(seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    inputs = []
    for _ in range(300):
        text = (
            random_prose(rng, rng.randint(1, 200))
            if rng.random() < 0.7
            else random_text(rng, rng.randint(0, 200))
        )
        inputs.append((text, rng.randint(-2, 300)))
    return inputs


@pytest.mark.parametrize("seed", range(3))
def test_truncation_matches_the_golden_run(seed: int) -> None:
    cuts = [prompt.truncate_to_tokens(text, budget) for text, budget in _truncation_inputs(seed)]
    assert digest(cuts) == GOLDEN[f"truncate_{seed}"]


@pytest.mark.parametrize("seed", range(3))
def test_truncation_invariants(seed: int) -> None:
    for text, budget in _truncation_inputs(seed):
        cut = prompt.truncate_to_tokens(text, budget)
        assert text.startswith(cut), (text, budget)
        if estimate_tokens(text) <= budget:
            assert cut == text
        else:
            assert estimate_tokens(cut) <= max(budget, 0), (text, budget)
        # The word-boundary fast path finds the cut a search over prefixes would.
        if budget > 0:
            boundary = token_estimate.longest_word_prefix(text, budget)
            assert estimate_tokens(text[:boundary]) <= budget


def _passage(rng: random.Random, number: int) -> Passage:
    text = (
        random_prose(rng, rng.randint(1, 900))
        if rng.random() < 0.8
        else random_text(rng, rng.randint(1, 3000))
    )
    heading = rng.choice([(), ("Part I",), ("Item 2 ", "Liquidity\n"), ("١٢",)])
    return Passage(
        chunk_id=number,
        document_id=f"doc-{number}",
        version_id=f"ver-{number}",
        kb_id="kb",
        filename=rng.choice(["10q.pdf", "notes 2024.pdf", "rapport_été.pdf"]),
        title=rng.choice([None, "Quarterly report", "12"]),
        text=text,
        page_start=rng.choice([None, 3]),
        page_end=rng.choice([None, 3, 5]),
        char_start=0,
        char_end=len(text),
        heading_path=heading,
        score=1.0,
    )


def _request(rng: random.Random) -> GenerationRequest:
    passages = [_passage(rng, n) for n in range(1, rng.randint(0, 10) + 1)]
    history = [
        Exchange(random_prose(rng, rng.randint(1, 40)), random_prose(rng, rng.randint(1, 300)))
        for _ in range(rng.randint(0, 4))
    ]
    question = rng.choice(["What happened?", "Revenue 2024?  ", random_prose(rng, 30)])
    return GenerationRequest(question, passages, history)


def _not_additive(text: str) -> int:
    # Longer texts cost disproportionately more: only the final check keeps the budget.
    return len(re.findall(r"\S+", text)) + len(text) // 50


@pytest.mark.parametrize(
    ("name", "estimator"),
    [("default", None), ("utf8_bound", utf8_bound), ("len", len), ("not_additive", _not_additive)],
)
@pytest.mark.parametrize("seed", range(3))
def test_prompts_match_the_golden_run(
    name: str, estimator: token_estimate.TokenEstimator | None, seed: int
) -> None:
    rng = random.Random(seed)
    kwargs = {} if estimator is None else {"estimator": estimator}
    results: list[object] = []
    built = 0
    for _ in range(60):
        request = _request(rng)
        budget = rng.choice([300, 800, 1500, 4000, 12000])
        try:
            got = prompt.build_prompt(request, max_context_tokens=budget, max_history=3, **kwargs)
        except LimitExceededError:
            results.append("limit")
            continue
        # Invariants: within budget, the sources a prefix of the ranking, the size exact.
        assert got.tokens <= budget and got.budget == budget
        assert got.included == tuple(range(1, len(got.included) + 1))
        assert got.tokens == prompt.prompt_tokens(got.messages, estimator or estimate_tokens)
        results.append(
            [got.messages, list(got.included), got.truncated, got.history, got.tokens, got.budget]
        )
        built += 1
    assert built > 20
    assert digest(results) == GOLDEN[f"prompt_{name}_{seed}"]
