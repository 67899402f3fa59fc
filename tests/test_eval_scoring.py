"""Answer extraction and metrics of streamforest.eval.scoring, pinned on the reference rules (REFERENCE §5.4, §8.7)."""

from __future__ import annotations

import pytest

from streamforest.eval import scoring


# ------------------------------------------------------------------------------------------ mcq_acc
@pytest.mark.parametrize(
    ("pred", "expected"),
    [
        ("B", "B"),
        ("(B)", "B"),
        ("B. text of the option", "B"),
        ("b. lower-case option", "B"),
        ("The answer is B", "B"),
        ("The answer is B.", "B"),
        ("Answer: (C) the red car", "C"),
        ("a man is walking", "A"),  # reference quirk: a standalone "a" is read as option A
        ("E", "E"),
        ("E. fifth", "E"),
        ("", ""),
        ("none of them", "none of them"),
        ("F", "f"),  # beyond E: no letter rule, the normalised string itself
        ("F. sixth", "f sixth"),
        ("1,000 cars", "1000 cars"),  # digit-comma-digit: punctuation deleted, not spaced
        ("left-right", "left right"),
    ],
)
def test_normalize_mcq_answer(pred: str, expected: str) -> None:
    assert scoring.normalize_mcq_answer(pred) == expected


@pytest.mark.parametrize(
    ("gt", "pred", "score"),
    [
        ("B", "(B)", 1),
        ("B", "B. text", 1),
        ("B", "The answer is B", 1),
        ("A", "a man", 1),
        ("B", "a man", 0),
        ("A", "", 0),
        ("E", "E", 1),
        ("F", "F", 1),  # options beyond E only match when bare
        ("F", "F. sixth", 0),
        ("F", "(F)", 1),
        ("C", "I think it is c", 1),
    ],
)
def test_mcq_acc(gt: str, pred: str, score: int) -> None:
    assert scoring.mcq_acc(gt, pred) == score


def test_vqa_punctuation_rules() -> None:
    assert scoring.vqa_process_punctuation("yes!") == "yes "  # no adjacent space: replaced by a space
    assert scoring.vqa_process_punctuation("yes !") == "yes "  # next to a space: deleted
    assert scoring.vqa_process_punctuation("3.5 m.") == "3.5 m"  # period before a digit kept


def test_format_mcq_and_answer_letter() -> None:
    text = scoring.format_mcq("What?", ["red", "blue", "green"])
    assert text == "What?\nA. red\nB. blue\nC. green\nAnswer with the option's letter from the given choices directly."
    assert scoring.answer_letter(["red", "blue", "green"], "green") == "C"
    assert scoring.answer_letter(["red", "blue"], "Blue") is None  # exact match only
    with pytest.raises(ValueError, match="candidates"):
        scoring.format_mcq("Q", [str(i) for i in range(27)])


def test_mcq_record_unmatched_answer_scores_zero() -> None:
    doc = {"candidates": ["x", "y"], "answer": "z", "sf_config": "cfg", "task": "T"}
    record = scoring.mcq_record(doc, ["A"], ("task", "subtask"))
    assert record["score"] == 0 and record["gt"] is None
    assert record["categories"] == {"config": "cfg", "task": "T"}


# ------------------------------------------------------------------------------------------ Video-MME
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B", "B"),
        ("The answer is C", "C"),
        ("The best answer is D.", "D"),
        ("(A) Apples.", "A"),
        ("Answer: B", "A"),  # first capital A-D anywhere: the "A" of "Answer" (reference behaviour)
        ("b", ""),  # lower case never matches
        ("", ""),
        ("this is a very long answer without any option letter in it at all", ""),
        ("The best option isThe correct option is B", "B"),  # the concatenated prefix is stripped whole
        ("The best option is B", "B"),
    ],
)
def test_videomme_extract(text: str, expected: str) -> None:
    assert scoring.videomme_extract(text) == expected


# ------------------------------------------------------------------------------------------ PerceptionTest
@pytest.mark.parametrize(
    ("text", "expected"),
    [("A", 0), ("B.", 1), ("The answer is C", 2), ("(D) a box", 3), ("b", None), ("a cup", None), ("", None), ("E", None)],
)
def test_perceptiontest_extract_is_case_sensitive(text: str, expected: int | None) -> None:
    assert scoring.perceptiontest_extract(text) == expected


# ------------------------------------------------------------------------------------------ OVO-Bench FAR
@pytest.mark.parametrize(
    ("subtask", "answer", "pred", "correct"),
    [
        ("SSR", "Put the pan on the stove", "Now: put the pan on the stove.", True),
        ("SSR", "Put the pan on the stove", "stove", False),
        ("CRR", "Yes", "yes, it does", True),
        ("CRR", "No", "", False),
        ("REC", "3", "There are 3 people", True),
        ("REC", "3", "There are 4 people", False),
        ("REC", "3", "3 or 4", False),  # two integers: None != 3
        ("REC", "two", "no idea", True),  # neither has exactly one integer: None == None counts as correct
        ("REC", "1 and 2", "5 then 6", True),
        ("rec", "7", "seven", False),
    ],
)
def test_ovo_far_rules(subtask: str, answer: str, pred: str, correct: bool) -> None:
    assert scoring.ovo_far_correct(subtask, answer, pred) is correct


def test_single_integer() -> None:
    assert scoring.single_integer("at 12 s") == 12
    assert scoring.single_integer("1 2") is None
    assert scoring.single_integer("none") is None


# ------------------------------------------------------------------------------------------ aggregation
def _records() -> list[dict]:
    return [
        scoring.make_record(1, "A", "A", {"task": "t1"}),
        scoring.make_record(0, "B", "A", {"task": "t1"}),
        scoring.make_record(1, "C", "C", {"task": "t2"}),
        scoring.make_record(0, "", "D", {"task": "t2"}),  # empty: failed or silent sample
    ]


def test_reference_excludes_empty_strict_counts_it_wrong() -> None:
    records = _records()
    assert scoring.accuracy_reference(records) == pytest.approx(100 * 2 / 3)
    assert scoring.accuracy_strict(records) == pytest.approx(50.0)
    assert scoring.aggregate("x", records, strict=False) == pytest.approx(100 * 2 / 3)
    assert scoring.aggregate("x", records, strict=True) == pytest.approx(50.0)
    # Video-MME / PerceptionTest: the reference already counts empties wrong; PerceptionTest is a fraction
    assert scoring.aggregate("x", records, strict=False, empty_is_wrong=True, scale=1.0) == pytest.approx(0.5)


def test_aggregation_edge_cases() -> None:
    assert scoring.accuracy_reference([]) == 0.0
    assert scoring.accuracy_strict([]) == 0.0
    only_empty = [scoring.make_record(0, "", "A")]
    assert only_empty[0]["empty"] is True
    assert scoring.accuracy_reference(only_empty) == 0.0


@pytest.mark.parametrize("blank", [" ", "  ", "\n", " \t\n"])
def test_reference_drops_exactly_empty_string(blank: str) -> None:
    """Issue 10 §5: the reference aggregations drop a prediction only when it equals "" (whitespace is an answer)."""
    doc = {"candidates": ["red", "green"], "answer": "red"}
    records = [
        scoring.mcq_record(doc, ["A"]),
        scoring.mcq_record(doc, [blank]),
        scoring.mcq_record(doc, [""]),
        scoring.mcq_record(doc, []),
    ]
    assert [r["empty"] for r in records] == [False, False, True, True]
    assert records[1]["pred"] == blank and records[1]["score"] == 0
    assert scoring.accuracy_reference(records) == pytest.approx(50.0)  # 1 correct of 2 answered
    assert scoring.aggregate("x", records, strict=False) == pytest.approx(50.0)
    assert scoring.aggregate("x", records, strict=True) == pytest.approx(25.0)  # strict: all four count
    assert scoring.breakdown([{**r, "categories": {"t": "a"}} for r in records])["t"]["a"]["empty"] == 2.0


def test_breakdown_and_macro_average(caplog: pytest.LogCaptureFixture) -> None:
    records = _records()
    table = scoring.breakdown(records)
    assert table["task"]["t1"] == {"n": 2.0, "empty": 0.0, "reference": 50.0, "strict": 50.0}
    assert table["task"]["t2"] == {"n": 2.0, "empty": 1.0, "reference": 100.0, "strict": 50.0}
    assert scoring.macro_average(records, "task") == pytest.approx(75.0)
    assert scoring.macro_average(records, "task", strict=True) == pytest.approx(50.0)
    with caplog.at_level("INFO", logger="streamforest.eval.scoring"):
        scoring.aggregate("odvbench", records, strict=False)
    assert "task=t2: n=2 reference=100.00 strict=50.00" in caplog.text


def test_first_response() -> None:
    assert scoring.first_response([" B \n"]) == " B \n"  # as given: the reference scores results[0] unstripped
    assert scoring.first_response([]) == ""
    assert scoring.first_response([None]) == ""
    assert scoring.first_response([["r1", "r2"]]) == "r2"
