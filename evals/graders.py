"""Graders: find a prediction in model text and decide if it equals the gold answer.

Each grader is a plain function with its own table of tricky cases in ``tests/unit/test_graders.py``.
No grader ever evaluates model text as code: Game of 24 expressions are parsed into a tree of
numbers and four operators and computed with exact rationals.
"""

from __future__ import annotations

import ast
import re
import threading
from collections import Counter
from typing import Literal

import sympy

from reasoning.answers import last_boxed

# -- GSM8K --------------------------------------------------------------------------------------------

_NUMBER = r"-?[$]?\s?\d[\d,]*(?:\.\d+)?"
_STRICT = re.compile(rf"(?:####|answer\s+is:?|answer:)\s*\**\s*({_NUMBER})", re.IGNORECASE)
_ANY_NUMBER = re.compile(_NUMBER)


def normalize_number(text: str) -> str | None:
    """'$1,250.00' -> '1250'; '-3.50' -> '-3.5'; None when it is not a number."""
    cleaned = text.replace(",", "").replace("$", "").replace(" ", "").rstrip(".")
    try:
        value = sympy.Rational(cleaned)
    except (TypeError, ValueError):
        return None
    if value.q == 1:
        return str(value.p)
    return str(float(value)).rstrip("0").rstrip(".")


def extract_gsm8k(text: str, mode: Literal["strict", "flexible"] = "strict") -> str | None:
    """strict: the number after "#### " or "The answer is" (the asked-for format, last one);
    flexible: the last number anywhere in the text."""
    if mode not in ("strict", "flexible"):
        raise ValueError(f"mode must be 'strict' or 'flexible', got {mode!r}")
    matches = _STRICT.findall(text) if mode == "strict" else _ANY_NUMBER.findall(text)
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

_TEXT_WRAPPERS = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_UNITS = re.compile(r"\\(?:,|!|;|quad)|\^\{?\\circ\}?|°|\\%|%|\\\$|\$")


def _strip_math(answer: str) -> str:
    """A canonical string form used by the fallback: no spacing commands, text wrappers, degrees or units."""
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
    return text.lower()


def _sympy_value(text: str) -> sympy.Expr | None:
    simple = re.sub(r"\\frac\{([^{}]+)\}\{([^{}]+)\}", r"((\1)/(\2))", text)
    simple = re.sub(r"\\sqrt\{([^{}]+)\}", r"sqrt(\1)", simple).replace("\\pi", "pi").replace("^", "**")
    simple = simple.replace("\\cdot", "*").replace("\\times", "*")
    if re.search(r"[a-df-oq-z\\]", simple.replace("sqrt", "").replace("pi", "")):
        return None  # letters other than sqrt/pi: leave symbolic answers to string comparison
    try:
        return sympy.sympify(simple, rational=True)
    except (sympy.SympifyError, SyntaxError, TypeError, ValueError, ZeroDivisionError):
        return None


def _math_verify_equal(prediction: str, gold: str) -> bool | None:
    """math-verify's verdict, or None when it cannot parse either side."""
    from math_verify import parse, verify

    # math-verify's timeouts use SIGALRM, which only the main thread may set.
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    wrap = lambda s: s if "\\boxed" in s else f"${s}$"  # noqa: E731
    try:
        parsed_gold = parse(wrap(gold), parsing_timeout=timeout)
        parsed_prediction = parse(wrap(prediction), parsing_timeout=timeout)
        if not parsed_gold or not parsed_prediction:
            return None
        return bool(verify(parsed_gold, parsed_prediction, timeout_seconds=timeout))
    except Exception:  # math-verify raises many kinds on odd input; the fallback decides then
        return None


def math_equal(prediction: str | None, gold: str) -> bool:
    """Whether a MATH prediction equals the gold answer: math-verify first, a sympy/string fallback second."""
    if prediction is None or not prediction.strip():
        return False
    if _math_verify_equal(prediction, gold):
        return True
    left, right = _strip_math(prediction), _strip_math(gold)
    if left == right:
        return True
    left_value, right_value = _sympy_value(left), _sympy_value(right)
    if left_value is None or right_value is None:
        return False
    try:
        return bool(sympy.simplify(left_value - right_value) == 0)
    except (TypeError, ValueError):
        return False


# -- Game of 24 -----------------------------------------------------------------------------------------

_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


class ExpressionError(ValueError):
    """The expression is not a Game of 24 expression (wrong numbers, other operators, division by zero)."""


def _evaluate(node: ast.AST, used: list[int]) -> sympy.Rational:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        used.append(node.value)
        return sympy.Rational(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left, used), _evaluate(node.right, used)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if right == 0:
            raise ExpressionError("division by zero")
        return left / right
    raise ExpressionError(f"only whole numbers, + - * / and brackets are allowed, found {type(node).__name__}")


def check_game24(expression: str, numbers: list[int] | tuple[int, ...]) -> bool:
    """True when ``expression`` uses exactly ``numbers`` (each once) with + - * / and equals 24 exactly."""
    try:
        return game24_value(expression, numbers) == 24
    except ExpressionError:
        return False


def game24_value(expression: str, numbers: list[int] | tuple[int, ...]) -> sympy.Rational:
    """The exact value of a Game of 24 expression; ExpressionError says why one is not acceptable."""
    text = expression.replace("×", "*").replace("÷", "/").replace("x", "*").strip()
    text = text.split("=")[0].strip()
    if not text:
        raise ExpressionError("empty expression")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ExpressionError(f"not an arithmetic expression: {expression!r}") from None
    used: list[int] = []
    value = _evaluate(tree.body, used)
    if Counter(used) != Counter(int(n) for n in numbers):
        raise ExpressionError(f"uses {sorted(used)}, must use exactly {sorted(numbers)}")
    return value


def extract_game24(text: str) -> str | None:
    """The expression in 'Answer: (expr) = 24', else the last line that ends in '= 24'."""
    answer = re.findall(r"answer\s*(?:is|:)\s*:?\s*([0-9+\-*/×÷() ]+)", text, re.IGNORECASE)
    if answer:
        return answer[-1].strip()
    lines = [m.group(1) for m in re.finditer(r"([0-9+\-*/×÷() ]+)=\s*24\b", text)]
    return lines[-1].strip() if lines else None


# -- AQuA -----------------------------------------------------------------------------------------------

_CHOICE_PATTERNS = [
    re.compile(r"answer\s*(?:is|:)\s*:?\s*\(?([A-E])\b", re.IGNORECASE),
    re.compile(r"\(([A-E])\)"),
    re.compile(r"\b([A-E])\)"),
    re.compile(r"^\s*([A-E])\s*[.)]?\s*$", re.MULTILINE),
]


def extract_choice(text: str) -> str | None:
    """The option letter A-E a reply commits to: 'The answer is (C)', '(C)', 'C)', or a lone letter."""
    for pattern in _CHOICE_PATTERNS:
        found = pattern.findall(text)
        if found:
            return found[-1].upper()
    return None
