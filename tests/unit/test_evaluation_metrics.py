"""The evaluation's metrics, question sets and comparisons against hand-computed values."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from shared.errors import InvalidInputError
from shared.evaluation import metrics
from shared.evaluation.compare import compare_question, compare_runs
from shared.evaluation.questions import EvalQuestion, questions_from_json, read_questions
from shared.store.evaluations import EvaluationResult

CORPUS_QUESTIONS = Path(__file__).resolve().parents[3] / "shared/corpus/sec-10q/questions_mini.csv"


def test_globs_match_file_names_case_insensitively_and_without_extension() -> None:
    assert metrics.matches_any("2023 Q3 AAPL.pdf", ["*AAPL*"])
    assert metrics.matches_any("2023 Q3 AAPL.pdf", ["*2023 q3 aapl*"])
    assert metrics.matches_any("2023 Q3 AAPL.pdf", ["2023 Q3 AAPL"])
    assert metrics.matches_any("2023 Q3 AAPL.pdf", ["nope", "2023 Q3 AAPL.pdf"])
    assert not metrics.matches_any("2023 Q3 AAPL.pdf", ["*MSFT*", "2023 Q3", ""])


def test_ndcg_at_10_by_hand() -> None:
    # Relevant at ranks 1 and 3 of 2 relevant: (1 + 1/log2(4)) / (1 + 1/log2(3)).
    value = metrics.ndcg_at(["a", "x", "b", "y"], {"a", "b"})
    assert value == pytest.approx((1 + 0.5) / (1 + 1 / math.log2(3)))
    assert metrics.ndcg_at(["a", "b"], {"a", "b"}) == pytest.approx(1.0)
    assert metrics.ndcg_at(["x", "y"], {"a"}) == 0.0
    # Only the first ten count: a relevant document at rank 11 adds nothing.
    assert metrics.ndcg_at([f"x{i}" for i in range(10)] + ["a"], {"a"}) == 0.0
    assert metrics.ndcg_at(["a"], set()) is None


def test_recall_precision_and_cites_only_expected_by_hand() -> None:
    assert metrics.recall_at(["a", "x", "b"], {"a", "b", "c"}, 2) == pytest.approx(1 / 3)
    assert metrics.recall_at(["a", "x", "b"], {"a", "b", "c"}, 3) == pytest.approx(2 / 3)
    assert metrics.source_precision(["a", "x"], {"a", "b"}) == 0.5
    assert metrics.source_precision([], {"a"}) is None
    assert metrics.source_recall(["a", "x"], {"a", "b"}) == 0.5
    assert metrics.source_recall(["a"], set()) is None
    assert metrics.cites_only_expected(["a"], {"a", "b"})
    assert not metrics.cites_only_expected(["a", "x"], {"a", "b"})
    assert not metrics.cites_only_expected([], {"a"})


def test_token_f1_by_hand() -> None:
    # answer tokens: net sales were 5 billion (4 after "the" goes) -> [net, sales, were, 5, billion]
    # reference: [net, sales, 5, billion, in, q3] -> common 4; p = 4/5, r = 4/6.
    f1 = metrics.token_f1("The net sales were $5 billion [1].", "Net sales: 5 billion in Q3")
    assert f1 == pytest.approx(2 * (4 / 5) * (4 / 6) / (4 / 5 + 4 / 6))
    assert metrics.token_f1("anything", "") is None
    assert metrics.token_f1("nothing shared", "different words") == 0.0
    assert metrics.unsupported_rate([True, False, False, True]) == 0.5
    assert metrics.unsupported_rate([]) is None
    assert metrics.mean([1.0, None, True, 0]) == pytest.approx(2 / 3)


def test_our_csv_format() -> None:
    text = (
        "question,expected_sources,reference_answer,tags\n"
        'What were Apple\'s sales?,*AAPL*;2023 Q3 MSFT.pdf,"About $81.8 billion.",table;aapl\n'
        "Who is Tesla's CEO?,,,negative\n"
    )
    first, second = read_questions(text)
    assert first == EvalQuestion(
        "What were Apple's sales?", ("*AAPL*", "2023 Q3 MSFT.pdf"), "About $81.8 billion.",
        ("table", "aapl"),
    )  # fmt: skip
    assert second == EvalQuestion("Who is Tesla's CEO?", (), None, ("negative",))


def test_the_old_tools_format_is_mapped() -> None:
    if not CORPUS_QUESTIONS.exists():
        pytest.skip("corpus not found")
    questions = read_questions(CORPUS_QUESTIONS.read_text(encoding="utf-8"))
    assert len(questions) == 9
    assert questions[0].question == "How has Apple's total net sales changed over time?"
    assert questions[0].expected_sources == ("*AAPL*",)
    assert questions[0].reference_answer and "$82,959 million" in questions[0].reference_answer
    assert questions[0].tags == ("Multi-Doc RAG", "Table")
    assert questions[-1].expected_sources == ("*2023 Q3 AMZN*",)


@pytest.mark.parametrize(
    "text",
    [
        "prompt,sources\nhi,x\n",
        "question,expected_sources\n,*A*\n",
        "question,expected_sources\n",
        "question\n" + "q\n" * 201,
    ],
)
def test_bad_question_sets_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        read_questions(text)
    assert raised.value.code == "invalid_questions"


def test_questions_as_json_take_lists() -> None:
    [question] = questions_from_json(
        [{"question": "Q?", "expected_sources": ["*A*", "*B*"], "tags": "x;y"}]
    )
    assert question.expected_sources == ("*A*", "*B*") and question.tags == ("x", "y")


def _result(question: str, status: str = "answered", **values: object) -> EvaluationResult:
    return EvaluationResult(
        ordinal=1, question=question, expected_sources=[], reference_answer=None, tags=[],
        status=status, turn_id=None, answer=None, cited=[], retrieved=[], metrics=dict(values),
        error=None,
    )  # fmt: skip


def test_a_comparison_judges_each_metric_by_its_direction() -> None:
    better = compare_question(
        {"ndcg_at_10": 0.5, "unsupported_citation_rate": 0.5, "answer_f1": None},
        {"ndcg_at_10": 0.7, "unsupported_citation_rate": 0.5, "answer_f1": 0.3},
    )
    assert better["verdict"] == "better"
    assert set(better["metrics"]) == {"ndcg_at_10", "unsupported_citation_rate"}
    # A lower unsupported rate is better; a lower recall worse: mixed.
    mixed = compare_question(
        {"source_recall": 1.0, "unsupported_citation_rate": 0.5},
        {"source_recall": 0.5, "unsupported_citation_rate": 0.0},
    )
    assert mixed["verdict"] == "mixed"
    assert (
        compare_question({"cites_only_expected": True}, {"cites_only_expected": False})["verdict"]
        == "worse"
    )
    assert compare_question({"ndcg_at_10": 0.5}, {"ndcg_at_10": 0.5})["verdict"] == "same"

    diff = compare_runs(
        [_result("a", ndcg_at_10=0.2), _result("b", ndcg_at_10=1.0), _result("c")],
        [_result("b", ndcg_at_10=0.0), _result("a", ndcg_at_10=0.4), _result("d")],
        ({"ndcg_at_10": 0.6, "questions": 3}, {"ndcg_at_10": 0.2, "questions": 3}),
    )
    verdicts = {row["question"]: row["verdict"] for row in diff["questions"]}
    assert verdicts == {"a": "better", "b": "worse", "c": "only_before", "d": "only_after"}
    assert diff["overall"]["ndcg_at_10"]["delta"] == pytest.approx(-0.4)


def test_a_summary_averages_defined_values_and_groups_by_tag() -> None:
    def tagged(tags: list[str], status: str = "answered", **values: object) -> EvaluationResult:
        result = _result("q", status, **values)
        return EvaluationResult(**{**result.__dict__, "tags": tags})

    from shared.evaluation.summary import summarize

    summary = summarize(
        [
            tagged(["a"], cites_only_expected=True, ndcg_at_10=1.0, citations=2,
                   unsupported_citations=1, answer_f1=None),
            tagged(["a", "b"], cites_only_expected=False, ndcg_at_10=0.5, citations=2,
                   unsupported_citations=0, answer_f1=0.4),
            tagged(["b"], cites_only_expected=True, ndcg_at_10=None, citations=0,
                   unsupported_citations=0),
            tagged(["b"], "skipped"),
        ]
    )  # fmt: skip
    assert (summary["questions"], summary["answered"], summary["skipped"]) == (4, 3, 1)
    assert summary["cites_only_expected_rate"] == pytest.approx(2 / 3)
    assert summary["ndcg_at_10"] == pytest.approx(0.75)
    assert summary["answer_f1"] == pytest.approx(0.4)
    assert summary["unsupported_citation_rate"] == pytest.approx(1 / 4)
    assert summary["by_tag"]["a"]["questions"] == 2
    assert summary["by_tag"]["a"]["cites_only_expected_rate"] == pytest.approx(0.5)
    assert summary["by_tag"]["b"]["questions"] == 2  # the skipped one does not count
    assert summary["by_tag"]["b"]["ndcg_at_10"] == pytest.approx(0.5)
