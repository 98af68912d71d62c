"""Tables of tricky cases for every grader."""

import pytest

from thoughtgraph.evals.graders import (
    ExpressionError,
    check_game24,
    extract_choice,
    extract_game24,
    extract_gsm8k,
    game24_value,
    gsm8k_gold,
    math_equal,
    numbers_equal,
)

GSM8K_CASES = [
    # text, strict, flexible
    ("She has 5 + 3 = 8 apples.\n#### 8", "8", "8"),
    ("The answer is 1,250.", "1250", "1250"),
    ("The answer is $18.", "18", "18"),
    ("The answer is $1,000.00", "1000", "1000"),
    ("The answer is -7.", "-7", "-7"),
    ("The answer is: 3.50", "3.5", "3.5"),
    ("Total is 12 dollars, so the answer is **42**.", "42", "42"),
    ("I computed 3 then 4 and got 17", None, "17"),
    ("#### 5\nThe answer is 16.", "16", "16"),
    ("Sure! Let me help.\n\nStep 1: 2 * 3 = 6\nStep 2: 6 + 1 = 7\n\nThe answer is 7. Hope this helps!", "7", "7"),
    ("no numbers", None, None),
    ("Answer: 0.5", "0.5", "0.5"),
]


@pytest.mark.parametrize(("text", "strict", "flexible"), GSM8K_CASES)
def test_gsm8k_extraction_strict_and_flexible(text, strict, flexible):
    assert extract_gsm8k(text, "strict") == strict
    assert extract_gsm8k(text, "flexible") == flexible


def test_gsm8k_gold_and_number_equality():
    assert gsm8k_gold("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72") == "72"
    assert gsm8k_gold("... #### 1,000") == "1000"
    assert numbers_equal("72.0", "72") and numbers_equal("$72", "72") and numbers_equal("72.", "72")
    assert not numbers_equal("71", "72") and not numbers_equal(None, "72") and not numbers_equal("x", "72")
    with pytest.raises(ValueError, match="no '####'"):
        gsm8k_gold("no marker")
    with pytest.raises(ValueError, match="mode must be"):
        extract_gsm8k("1", "loose")


MATH_EQUAL = [
    ("\\frac{1}{2}", "\\frac12"),
    ("0.5", "\\frac{1}{2}"),
    ("\\dfrac{3}{4}", "\\frac{3}{4}"),
    ("\\boxed{\\frac{3}{4}}", "\\frac34"),
    ("\\boxed{\\boxed{7}}", "7"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"),
    ("\\sqrt{3}/3", "\\frac{\\sqrt3}{3}"),
    ("(1,2]", "(1, 2]"),
    ("[-3, 4)", "[-3,4)"),
    ("(-\\infty, 0)", "(-\\infty,0)"),
    ("90^\\circ", "90"),
    ("90^{\\circ}", "90"),
    ("30°", "30"),
    ("\\text{Monday}", "Monday"),
    ("\\text{(C)}", "(C)"),
    ("x=5", "5"),
    ("10\\%", "10"),
    ("\\$5.00", "5"),
    ("1,000", "1000"),
    ("\\pi", "\\pi"),
    ("2\\pi", "2 \\pi"),
    ("\\frac{\\pi}{2}", "\\pi/2"),
    ("3+2i", "2i+3"),
    ("x^2+2x+1", "(x+1)^2"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
    ("-\\frac{1}{3}", "\\frac{-1}{3}"),
    ("6.0", "6"),
    ("\\sqrt{2}+1", "1+\\sqrt2"),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"),
]
MATH_NOT_EQUAL = [
    ("\\frac{1}{3}", "\\frac{1}{2}"),
    ("0.33", "\\frac{1}{3}"),
    ("2\\sqrt{2}", "\\sqrt{2}"),
    ("(1,2)", "(1,2]"),
    ("[1,2]", "(1,2)"),
    ("\\text{Tuesday}", "Monday"),
    ("90", "45^\\circ"),
    ("-5", "5"),
    ("x^2+1", "(x+1)^2"),
    ("\\pi", "3"),
    ("", "1"),
    ("12", "\\boxed{13}"),
]


@pytest.mark.parametrize(("prediction", "gold"), MATH_EQUAL)
def test_math_equivalent_answers(prediction, gold):
    assert math_equal(prediction, gold)


@pytest.mark.parametrize(("prediction", "gold"), MATH_NOT_EQUAL)
def test_math_different_answers(prediction, gold):
    assert not math_equal(prediction, gold)


def test_math_table_is_large_enough():
    assert len(MATH_EQUAL) + len(MATH_NOT_EQUAL) >= 40


@pytest.mark.parametrize(
    ("expression", "numbers", "valid"),
    [
        ("(10 - 4) * (13 - 9)", [4, 9, 10, 13], True),
        ("2 * 3 * 4 * 1", [1, 2, 3, 4], True),
        ("(1 + 2 + 3) * 4", [1, 2, 3, 4], True),
        ("8 / (3 - 8 / 3)", [3, 3, 8, 8], True),  # needs exact rationals: 8/(1/3) = 24
        ("6 × 4 × 1 × 1", [1, 1, 4, 6], True),
        ("(10 - 4) * (13 - 9) = 24", [4, 9, 10, 13], True),
        ("(1 + 2 + 3) * 4", [1, 2, 3, 5], False),  # wrong numbers
        ("4 * 6", [1, 1, 4, 6], False),  # numbers left out
        ("4 * 6 * 1 * 1 * 1", [1, 1, 4, 6], False),  # a number reused
        ("24 / (4 - 4) + 1 + 2", [1, 2, 4, 4], False),  # division by zero
        ("1 + 2 + 3 + 4", [1, 2, 3, 4], False),  # not 24
        ("2 ** 3 * 3", [2, 3, 3], False),  # other operators
        ("__import__('os').system('true')", [1, 2, 3, 4], False),  # never evaluated
        ("", [1, 2, 3, 4], False),
        ("(2 + 2", [1, 2, 3, 4], False),
        ("4.0 * 6 * 1 * 1", [1, 1, 4, 6], False),  # floats are not the given numbers
    ],
)
def test_game24_exact_check(expression, numbers, valid):
    assert check_game24(expression, numbers) is valid


def test_game24_errors_say_why():
    with pytest.raises(ExpressionError, match="division by zero"):
        game24_value("24 / (4 - 4) + 1 + 2", [1, 2, 4, 4])
    with pytest.raises(ExpressionError, match="must use exactly"):
        game24_value("4 * 6", [1, 1, 4, 6])
    with pytest.raises(ExpressionError, match="only whole numbers"):
        game24_value("__import__('os')", [1])


def test_game24_expression_extraction():
    assert extract_game24("Steps...\nAnswer: (10 - 4) * (13 - 9) = 24") == "(10 - 4) * (13 - 9)"
    assert extract_game24("so 6 * 4 = 24\nthen (1 + 5) * 4 = 24") == "(1 + 5) * 4"
    assert extract_game24("no idea") is None


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("The answer is (C).", "C"),
        ("the answer is b", "B"),
        ("Answer: D", "D"),
        ("Looking at (A) and (B), (E) fits.", "E"),
        ("Option C) 12 is right", "C"),
        ("Reasoning...\nB\n", "B"),
        ("I cannot decide.", None),
        ("A lot of Apples", None),
    ],
)
def test_aqua_choice_extraction(text, letter):
    assert extract_choice(text) == letter


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2\\tfrac{1}{4}", "1/2"),
        ("3\\dfrac12", "3/2"),
        ("\\frac{1}{2}\\sqrt{4}", "1"),
        ("2^{3}-1", "7"),
        ("-(1+2)", "-3"),
    ],
)
def test_the_fallback_parser_builds_values_from_its_own_tree(text, value):
    import sympy

    from thoughtgraph.evals.mathparse import parse, to_sympy

    assert to_sympy(parse(text)) == sympy.Rational(value)
