"""One extraction for every method and the graders: the whole stated answer, and a step is final only when
it states one. Each expected value below is written by hand from the text."""

import pytest

from thoughtgraph.reasoning.answers import clean_answer, extract_answer, stated_answer

EXTRACTION = [
    # whole answers, not their first number
    ("The answer is 3/4.", "3/4"),
    ("So the answer is \\frac{1}{2}.", "\\frac{1}{2}"),
    ("The answer is 10^3.", "10^3"),
    ("The answer is 2\\sqrt{2}.", "2\\sqrt{2}"),
    ("The answer is 3 + 2i.", "3 + 2i"),
    ("The answer is x = 5.", "5"),
    ("The answer is 2 * 1.5 = 3 bolts.", "3"),
    ("The answer is 720 x 4 = 2,880 dollars.", "2880"),
    ("The answer is (a, b) = (1, 2).", "(a, b) = (1, 2)"),
    ("The answer is x \\ge 3.", "x \\ge 3"),
    ("The answer is 1, 2, 3.", "1, 2, 3"),
    ("The answer is [-3, 4).", "[-3, 4)"),
    ("The answer is .75.", ".75"),
    ("The answer is 6 \\text{ cm}^2.", "6 \\text{ cm}^2"),
    # negatives, separators, currency, units
    ("The answer is -7.", "-7"),
    ("The answer is −7.", "-7"),
    ("The answer is $1,250.", "1250"),
    ("The answer is 1,250,000 dollars.", "1250000"),
    ("The answer is 72 clips.", "72"),
    ("The answer is 3.5.", "3.5"),
    ("The answer is 0.5 hours.", "0.5"),
    ("The answer is 45%.", "45"),
    ("answer is 100 meters", "100"),
    # GSM8K hashes
    ("#### 72", "72"),
    ("#### 1,000", "1000"),
    ("#### -3/4", "-3/4"),
    # boxed, with nested braces
    ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),
    ("thus \\boxed{\\left( 3, \\frac{\\pi}{2} \\right)} done", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("\\boxed{\\boxed{7}}", "7"),
    ("\\boxed{a} then \\boxed{x^{2}}", "x^{2}"),
    ("\\boxed{1,000}", "1000"),
    ("\\boxed{(1,2]}", "(1,2]"),
    ("The final answer is $\\boxed{5}$.", "5"),
    ("The final answer is $\\frac{3}{4}$.", "\\frac{3}{4}"),
    # markdown and choices
    ("**Final Answer:** 42", "42"),
    ("Total is 12 dollars, so the answer is **42**.", "42"),
    ("Answer: (C)", "(C)"),
    ("The answer is (B).", "(B)"),
    ("The answer is C.", "C"),
    ("The answer is: blue.", "blue"),
    ("Answer: Monday", "Monday"),
    # the last stated answer wins; the sentence ends the answer
    ("The answer is 12, so she has 12 apples.", "12"),
    ("The answer is 3. Then \\boxed{4}", "4"),
    ("#### 5\nThe answer is 16.", "16"),
    # mentioning the word states nothing: the last number is the fallback
    ("To find the answer: halve 48 first, 48/2 = 24.", "24"),
    ("The answer is unclear yet. We have 7 left.", "7"),
    ("I got 3 then 5 then -12", "-12"),
    ("no digits here", None),
]


@pytest.mark.parametrize(("text", "answer"), EXTRACTION)
def test_extraction_returns_the_whole_stated_answer(text, answer):
    assert extract_answer(text) == answer


def test_the_table_has_at_least_forty_cases():
    assert len(EXTRACTION) >= 40


@pytest.mark.parametrize(
    ("step", "answer"),
    [
        ("To find the answer: halve 48 first, 48/2 = 24.", None),
        ("The answer is unclear yet.", None),
        ("Let me check the answer is right: 5 + 3 = 8", None),
        ("Step 2: the answer to part a is 3", None),
        ("48 / 2 = 24 clips in May.", None),
        ("So 48 + 24 = 72. The answer is 72.", "72"),
        ("#### 72", "72"),
        ("Therefore \\boxed{72}.", "72"),
        ("Answer: 72", "72"),
    ],
)
def test_a_step_is_final_only_when_it_states_an_answer(step, answer):
    assert stated_answer(step) == answer


@pytest.mark.parametrize(
    ("stated", "clean"),
    [("**42**", "42"), ("$18$", "18"), ("\\(x^2\\)", "x^2"), ("12 apples.", "12"), ("1,2", "1,2"), ("3/4.", "3/4")],
)
def test_clean_answer(stated, clean):
    assert clean_answer(stated) == clean


def test_a_chain_stops_once_it_has_stated_its_answer():
    from thoughtgraph.backends.scripted import ScriptedBackend, ScriptRule
    from thoughtgraph.reasoning import solve

    repeating = "Work.\nThe answer is 7.\nThe answer is 7.\nThe answer is 7.\nThe answer is 7."
    solution = solve("What is 3 + 4?", "cot", ScriptedBackend([ScriptRule("3 \\+ 4", [repeating])]))
    assert solution.reasoning == "Work.\nThe answer is 7."
    # "Work." "\nThe" " answer" " is" " 7." and "\nThe", whose newline shows the answer's line is over
    assert solution.usage["completion_tokens"] == 6
    assert solution.answer == "7"


def test_a_stop_pattern_must_be_a_regular_expression():
    from thoughtgraph.backends import InvalidRequestError, Request

    with pytest.raises(InvalidRequestError, match="not a regular expression"):
        Request.chat(("user", "q"), stop_pattern="(unclosed")


def test_why_no_answer_names_the_budget_or_the_unreadable_replies():
    from collections import Counter

    from thoughtgraph.reasoning.solution import Solution

    answered = Solution(answer="4", reasoning="2 + 2 = 4", method="cot", stopped_by="max_calls=1 reached")
    assert answered.why_no_answer() is None  # an answer needs no excuse, even when a budget also stopped the run
    stopped = Solution(answer=None, reasoning="", method="bot", stopped_by="max_tokens=50 reached")
    assert stopped.why_no_answer() == "max_tokens=50 reached"
    one = Solution(answer=None, reasoning="", method="sc", usage={"events": {"parse_failure": 1}})
    assert one.why_no_answer() == "no chain stated an answer that could be read (1 unreadable reply)"
    three = Solution(
        answer=None, reasoning="", method="sc", usage={"events": {"parse_failure": 3}}, candidates=Counter()
    )
    assert three.why_no_answer() == "no chain stated an answer that could be read (3 unreadable replies)"
    none = Solution(answer=None, reasoning="", method="sc")
    assert none.why_no_answer() == "no chain stated an answer that could be read (0 unreadable replies)"


def test_the_numeric_answer_constraint_is_bounded():
    """A constrained final answer cannot run on: at most 16 digits and commas, then at most 4 decimals."""
    import re

    from thoughtgraph.reasoning.answers import NUMBER_PATTERN

    for allowed in ("7", "-12", "1,234,567", "16.0000", "9" * 16):
        assert re.fullmatch(NUMBER_PATTERN, allowed), allowed
    for refused in ("16.00000", "9" * 17, "1.", ".5", "--1"):
        assert not re.fullmatch(NUMBER_PATTERN, refused), refused
