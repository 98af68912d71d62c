"""Graders: find a prediction in model text and decide if it equals the gold answer.

Each grader is a plain function with its own table of tricky cases in ``tests/evals/test_graders.py``.
Model text is data: no grader hands it to an evaluator (``eval``, ``sympify``, ``parse_expr``). Numbers
are read with a regular expression into exact fractions; MATH answers and Game of 24 expressions go
through the whitelist grammar of :mod:`evals.mathparse` (NFKC first, then length, nesting and
magnitude limits), and only text inside that grammar reaches math-verify's LaTeX parser or becomes
sympy objects. Extraction looks at the last ``MAX_SCAN_CHARS`` characters of a reply, and every
pattern is written so that it runs in linear time. An answer that cannot be graded within the
limits raises :class:`~evals.mathparse.Ungradable`; the scoring layer records it per sample.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import Counter
from fractions import Fraction
from typing import Literal

import sympy

from thoughtgraph.evals.mathparse import (
    Node,
    OutsideGrammar,
    Ungradable,
    arithmetic_value,
    normalize,
    parse,
    to_sympy,
    tokenize,
    value_digits,
)
from thoughtgraph.reasoning.answers import last_boxed

MAX_SCAN_CHARS = 20_000
"""Extraction reads only the end of a reply: the answer is stated last, and a 1 MB reply costs nothing."""
MAX_NUMBER_CHARS = 40


def tail(text: str) -> str:
    return text[-MAX_SCAN_CHARS:]


# -- GSM8K --------------------------------------------------------------------------------------------

_NUMBER = r"-?[$]?\s?\d[\d,]*(?:\.\d+)?"
_STRICT = re.compile(rf"(?:####|answer\s+is:?|answer:)[ \t]*(?:\*+[ \t]*)?({_NUMBER})", re.IGNORECASE)
_ANY_NUMBER = re.compile(_NUMBER)
_DECIMAL = re.compile(r"-?\d+(?:\.\d+)?")
_FRACTION = re.compile(r"(-?\d+)/(\d+)")


def normalize_number(text: str) -> str | None:
    """'$1,250.00' -> '1250'; '-3.50' -> '-3.5'; '3/4' -> '0.75'; None when it is not a number
    (also for '5/0' and for numbers longer than MAX_NUMBER_CHARS)."""
    if len(text) > 4 * MAX_NUMBER_CHARS:
        return None
    cleaned = unicodedata.normalize("NFKC", text).replace(",", "").replace("$", "").replace(" ", "").rstrip(".")
    if len(cleaned) > MAX_NUMBER_CHARS:
        return None
    if _DECIMAL.fullmatch(cleaned):
        value = Fraction(cleaned)
    elif (fraction := _FRACTION.fullmatch(cleaned)) and int(fraction.group(2)) != 0:
        value = Fraction(int(fraction.group(1)), int(fraction.group(2)))
    else:
        return None
    if value.denominator == 1:
        return str(value.numerator)
    return str(float(value)).rstrip("0").rstrip(".")


def extract_gsm8k(text: str, mode: Literal["strict", "flexible"] = "strict") -> str | None:
    """strict: the number after "#### " or "The answer is" (the asked-for format, last one);
    flexible: the last number anywhere in the text."""
    if mode not in ("strict", "flexible"):
        raise ValueError(f"mode must be 'strict' or 'flexible', got {mode!r}")
    pattern = _STRICT if mode == "strict" else _ANY_NUMBER
    matches = pattern.findall(tail(text))
    return normalize_number(matches[-1]) if matches else None


def gsm8k_gold(solution: str) -> str:
    """The gold number after '####' in a GSM8K answer field."""
    if "####" not in solution:
        raise ValueError("GSM8K answer has no '####' marker")
    gold = normalize_number(solution.split("####")[-1].strip())
    if gold is None:
        raise ValueError(f"GSM8K gold answer is not a number: {solution.split('####')[-1].strip()!r}")
    return gold


def numbers_equal(prediction: str | None, gold: str) -> bool:
    if prediction is None:
        return False
    left, right = normalize_number(prediction), normalize_number(gold)
    return left is not None and left == right


# -- MATH -----------------------------------------------------------------------------------------------

_TEXT_WRAPPERS = re.compile(r"\\(?:text|textbf|textnormal|mathrm|mbox)\{([^{}]*)\}")
_UNITS = re.compile(r"\\(?:,|!|;|quad)|\^\{?\\circ\}?|°|\\%|%|\\\$|\$")


def _strip_math(answer: str) -> str:
    """A canonical string form: no boxes, spacing commands, text wrappers, degrees or units."""
    text = answer.strip()
    boxed = last_boxed(text)
    if boxed is not None:
        text = boxed
    text = _TEXT_WRAPPERS.sub(r"\1", text)
    text = text.replace("\\left", "").replace("\\right", "").replace("dfrac", "frac").replace("tfrac", "frac")
    text = _UNITS.sub("", text)
    text = re.sub(r"\s+", "", text).rstrip(".")
    if text.startswith(("x=", "y=", "k=", "n=")) and "," not in text:
        text = text[2:]
    return text


_NOT_BUILT = (OutsideGrammar, ZeroDivisionError, TypeError, ValueError, AttributeError)


def _tree(text: str) -> Node | None:
    """The parse tree of a stripped answer, its sizes bounded (``value_digits``: Ungradable when too large);
    None outside the fallback grammar."""
    try:
        tree = parse(text)
        value_digits(tree)
    except Ungradable:
        raise
    except _NOT_BUILT:
        return None
    return tree


def _sympy_value(tree: Node | None) -> sympy.Basic | None:
    """The value built from a bounded parse tree; None when there is no tree or it has no value."""
    if tree is None:
        return None
    try:
        return to_sympy(tree)
    except Ungradable:
        raise
    except _NOT_BUILT:
        return None


def _math_verify_equal(prediction: str, gold: str) -> bool | None:
    """math-verify's verdict (its LaTeX parser only, never its Python-expression parser), or None."""
    from math_verify import LatexExtractionConfig, parse, verify

    # math-verify's timeouts use SIGALRM, which only the main thread may set; the grading sandbox
    # (evals.sandbox) runs graders in a main thread of their own with a hard time limit besides.
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    config = [LatexExtractionConfig()]
    wrap = lambda s: s if "\\boxed" in s else f"${s}$"  # noqa: E731
    try:
        parsed_gold = parse(wrap(gold), extraction_config=config, parsing_timeout=timeout)
        parsed_prediction = parse(wrap(prediction), extraction_config=config, parsing_timeout=timeout)
        if not parsed_gold or not parsed_prediction:
            return None
        return bool(verify(parsed_gold, parsed_prediction, timeout_seconds=timeout))
    except Exception:  # math-verify raises many kinds on odd input; the fallback decides then
        return None


def _inside_grammar(text: str) -> bool:
    try:
        tokenize(text)
    except OutsideGrammar:
        return False
    return True


def math_equal(prediction: str | None, gold: str) -> bool:
    """Whether a MATH prediction equals the gold answer: equal canonical strings, else (for answers
    inside the grammar) math-verify, else sympy objects built from the parse tree.
    Raises Ungradable when an answer exceeds the grammar's limits."""
    if prediction is None or not prediction.strip():
        return False
    prediction, gold = normalize(prediction), normalize(gold)
    left, right = _strip_math(prediction), _strip_math(gold)
    if left.lower() == right.lower():
        return True
    if not (_inside_grammar(prediction) and _inside_grammar(gold)):
        return False
    trees = [_tree(left), _tree(right)]  # parsed once, sizes bounded before math-verify or sympy builds anything
    if _math_verify_equal(prediction, gold):
        return True
    left_value, right_value = (_sympy_value(tree) for tree in trees)
    if left_value is None or right_value is None:
        return False
    try:
        return bool(sympy.simplify(left_value - right_value) == 0)
    except (TypeError, ValueError, AttributeError):
        return False


# -- Game of 24 -----------------------------------------------------------------------------------------

MAX_EXPRESSION_CHARS = 200
_EXPRESSION_CHARACTERS = frozenset("0123456789+-*/×÷() ")


class ExpressionError(ValueError):
    """The expression is not a Game of 24 expression (wrong numbers, other operators, division by zero)."""


def check_game24(expression: str, numbers: list[int] | tuple[int, ...]) -> bool:
    """True when ``expression`` uses exactly ``numbers`` (each once) with + - * / and equals 24 exactly."""
    try:
        return game24_value(expression, numbers) == 24
    except ExpressionError:
        return False


def game24_value(expression: str, numbers: list[int] | tuple[int, ...]) -> Fraction:
    """The exact value of a Game of 24 expression; ExpressionError says why one is not acceptable."""
    text = unicodedata.normalize("NFKC", expression[: 4 * MAX_EXPRESSION_CHARS])
    text = text.replace("×", "*").replace("÷", "/").replace("x", "*").split("=")[0].strip()
    if not text:
        raise ExpressionError("empty expression")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = parse(text, arithmetic_only=True)
    except (OutsideGrammar, Ungradable) as error:
        raise ExpressionError(f"only whole numbers, + - * / and brackets are allowed: {error}") from None
    used: list[int] = []
    try:
        value = arithmetic_value(tree, used)
    except ZeroDivisionError:
        raise ExpressionError("division by zero") from None
    if Counter(used) != Counter(int(n) for n in numbers):
        raise ExpressionError(f"uses {sorted(used)}, must use exactly {sorted(numbers)}")
    return value


def _trailing_expression(text: str) -> str:
    """The longest run of expression characters at the end of ``text`` (a backwards scan: linear time)."""
    start = len(text)
    while start > 0 and text[start - 1] in _EXPRESSION_CHARACTERS:
        start -= 1
    return text[start:].strip()


_ANSWER_EXPRESSION = re.compile(r"answer\s*(?:is|:)[\s:]*([0-9(][0-9+\-*/×÷() ]*)", re.IGNORECASE)
_EQUALS_24 = re.compile(r"=[ \t]*24\b")


def extract_game24(text: str) -> str | None:
    """The expression in 'Answer: (expr) = 24', else the last line that ends in '= 24'."""
    text = tail(text)
    answer = _ANSWER_EXPRESSION.findall(text)
    if answer:
        return answer[-1].strip()
    for line in reversed(text.splitlines()):
        equals = list(_EQUALS_24.finditer(line))
        if equals:
            expression = _trailing_expression(line[: equals[-1].start()])
            if expression:
                return expression
    return None


# -- AQuA -----------------------------------------------------------------------------------------------

_CHOICE_PATTERNS = [
    re.compile(r"answer\s*(?:is|:)[\s:]*\(?([A-E])\b", re.IGNORECASE),
    re.compile(r"\(([A-E])\)"),
    re.compile(r"\b([A-E])\)"),
    re.compile(r"^[ \t]*([A-E])[ \t]*[.)]?[ \t]*$", re.MULTILINE),
]


def extract_choice(text: str) -> str | None:
    """The option letter A-E a reply commits to: 'The answer is (C)', '(C)', 'C)', or a lone letter."""
    text = tail(text)
    for pattern in _CHOICE_PATTERNS:
        found = pattern.findall(text)
        if found:
            return found[-1].upper()
    return None
