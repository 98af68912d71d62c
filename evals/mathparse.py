"""A whitelist grammar for answers a model writes: limits first, then tokens, then a parse tree.

Model text is data. Nothing here hands it to ``eval``, ``exec``, ``sympify`` or ``parse_expr``:
text is normalised (NFKC, so fullwidth letters become the ASCII they look like *before* the
whitelist sees them), checked against length and nesting limits, cut into tokens from a fixed
set (numbers, single letters, a list of LaTeX commands, operators and brackets), and parsed by a
small recursive-descent parser into sympy objects built node by node. Anything outside the
grammar is :class:`OutsideGrammar` (the grader then compares strings only); anything inside it
but too large to grade safely (a power tower, a 10k-deep nesting, a 1 MB answer) is
:class:`Ungradable`.

The same tokenizer and parser serve Game of 24 (:func:`arithmetic_value`, whole numbers and
``+ - * /`` only, exact rationals) and MATH (:func:`to_sympy`, the fallback when math-verify
cannot decide).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction

import sympy

MAX_ANSWER_CHARS = 1000
"""Longer answers are not graded (a MATH answer is a few dozen characters)."""
MAX_NESTING = 25
"""Brackets and braces deeper than this are not graded."""
MAX_TOKENS = 400
MAX_DIGITS = 60
"""A number with more digits than this is not graded."""
MAX_EXPONENT = 10_000
"""Largest literal exponent built; no power tower is built at all."""
MAX_FACTORIAL = 5_000
MAX_VALUE_DIGITS = 20_000
"""Largest number (in decimal digits) any node of a tree may build; bounded over the whole tree before
anything is built (``value_digits``), so nested powers and long products of powers are refused too."""


class Ungradable(ValueError):
    """The answer is inside the grammar but cannot be graded within the limits; the reason says which."""


class OutsideGrammar(ValueError):
    """The answer uses a character or command outside the whitelist; it is compared as a string only."""


# Unicode maths a model may write, mapped to the LaTeX the grammar knows (after NFKC).
_UNICODE_MATH = {
    "−": "-",
    "–": "-",
    "×": "\\times ",
    "÷": "\\div ",
    "·": "\\cdot ",
    "⋅": "\\cdot ",
    "π": "\\pi ",
    "√": "\\sqrt ",
    "∞": "\\infty ",
    "≤": "\\le ",
    "≥": "\\ge ",
    "≠": "\\ne ",
    "±": "\\pm ",
    "°": "^\\circ ",
    "∪": "\\cup ",
    "∩": "\\cap ",
    "∈": "\\in ",
    "∅": "\\emptyset ",
}
_UNICODE_TABLE = str.maketrans(_UNICODE_MATH)

ALLOWED_COMMANDS = frozenset(
    """frac dfrac tfrac sqrt pi cdot times div pm mp left right infty circ degree text textbf textit mathrm
    mbox mathbf operatorname boxed fbox le leq ge geq ne neq lt gt cup cap in notin emptyset varnothing setminus
    sin cos tan cot sec csc arcsin arccos arctan log ln exp begin end dots ldots cdots quad qquad displaystyle
    alpha beta gamma delta theta lambda mu sigma phi varphi omega rho tau epsilon varepsilon approx sim
    mathbb mathcal hline land lor neg to rightarrow Rightarrow cfrac overline angle triangle prime textnormal
    """.split()  # noqa: SIM905 - a word list reads better than 90 quoted strings
)
ALLOWED_ENVIRONMENTS = frozenset({"pmatrix", "bmatrix", "matrix", "array", "cases", "vmatrix"})

_TOKEN = re.compile(
    r"""
    (?P<number>\d+(?:\.\d+)?|\.\d+)
  | (?P<command>\\[A-Za-z]+)
  | (?P<escape>\\[{}%$,;:!\\ |])
  | (?P<letter>[A-Za-z])
  | (?P<operator>[-+*/^_=<>,!|&:;%$])
  | (?P<open>[(\[{])
  | (?P<close>[)\]}])
  | (?P<space>[\s~]+)
  | (?P<period>\.)
    """,
    re.VERBOSE,
)
_CLOSING = {"(": ")", "[": "]", "{": "}"}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


def normalize(text: str) -> str:
    """NFKC (fullwidth and other compatibility forms become plain ASCII), Unicode maths as LaTeX, limits."""
    if len(text) > MAX_ANSWER_CHARS * 4:  # checked before normalising: NFKC of huge text costs time
        raise Ungradable(f"answer has {len(text)} characters; at most {MAX_ANSWER_CHARS} are graded")
    normalized = unicodedata.normalize("NFKC", text).translate(_UNICODE_TABLE).strip()
    if len(normalized) > MAX_ANSWER_CHARS:
        raise Ungradable(f"answer has {len(normalized)} characters; at most {MAX_ANSWER_CHARS} are graded")
    return normalized


def tokenize(text: str) -> list[Token]:
    """Tokens of a normalised answer; spacing dropped. Raises OutsideGrammar or Ungradable."""
    tokens: list[Token] = []
    depth = 0
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise OutsideGrammar(f"character {text[position]!r} at {position} is outside the answer grammar")
        position = match.end()
        kind, value = match.lastgroup or "", match.group()
        if kind == "space" or (kind == "escape" and value[1] in ",;:! "):
            continue
        if kind == "command" and value[1:] not in ALLOWED_COMMANDS:
            raise OutsideGrammar(f"command {value} is outside the answer grammar")
        if kind == "number" and len(value.split(".")[0]) > MAX_DIGITS:
            raise Ungradable(f"a number with more than {MAX_DIGITS} digits")
        if kind == "open":
            depth += 1
            if depth > MAX_NESTING:
                raise Ungradable(f"brackets nested deeper than {MAX_NESTING}")
        elif kind == "close":
            depth -= 1
        tokens.append(Token(kind, value))
        if len(tokens) > MAX_TOKENS:
            raise Ungradable(f"more than {MAX_TOKENS} tokens")
    _check_environments(tokens)
    _check_magnitudes(tokens)
    return tokens


def _check_environments(tokens: list[Token]) -> None:
    for i, token in enumerate(tokens):
        if token.text in ("\\begin", "\\end"):
            end = _group_end(tokens, i + 1)
            name = "".join(t.text for t in tokens[i + 2 : end - 1])
            if tokens[i + 1 : i + 2] != [Token("open", "{")] or name not in ALLOWED_ENVIRONMENTS:
                raise OutsideGrammar(f"{token.text} needs one of the environments {sorted(ALLOWED_ENVIRONMENTS)}")


def _group_end(tokens: list[Token], start: int) -> int:
    """Index just past the operand starting at ``start``: one token, or a bracketed group."""
    if start >= len(tokens):
        return start
    if tokens[start].kind != "open":
        end = start + 1
        # \sqrt{..}, \frac{..}{..} and functions take groups of their own
        while tokens[start].kind == "command" and end < len(tokens) and tokens[end].kind == "open":
            end = _group_end(tokens, end)
        return end
    depth = 0
    for i in range(start, len(tokens)):
        depth += {"open": 1, "close": -1}.get(tokens[i].kind, 0)
        if depth == 0:
            return i + 1
    return len(tokens)


def _literal(tokens: list[Token]) -> float | None:
    numbers = [t for t in tokens if t.kind == "number"]
    return max(float(t.text) for t in numbers) if numbers else None


def _group_start(tokens: list[Token], end: int) -> int:
    """Index of the bracket that opens the group closing at ``end``."""
    depth = 0
    for i in range(end, -1, -1):
        depth += {"close": 1, "open": -1}.get(tokens[i].kind, 0)
        if depth == 0:
            return i
    return 0


def _exponent(tokens: list[Token], caret: int) -> tuple[list[Token], int]:
    """The exponent operand of the ``^`` at ``caret`` and the index just past it."""
    start = caret + 1 + (caret + 1 < len(tokens) and tokens[caret + 1].text in "+-")
    end = _group_end(tokens, start)
    return tokens[start:end], end


def _largest_exponent(tokens: list[Token]) -> float:
    """The largest literal exponent of any power inside ``tokens`` (1 when there is none)."""
    largest = 1.0
    for i, token in enumerate(tokens):
        if token.text == "^":
            largest = max(largest, _literal(_exponent(tokens, i)[0]) or 1.0)
    return largest


def _check_magnitudes(tokens: list[Token]) -> None:
    """Refuse what would take unbounded time or memory to build: power towers, huge exponents (also as a
    power of a power), huge factorials."""
    for i, token in enumerate(tokens):
        if token.text == "^":
            exponent, end = _exponent(tokens, i)
            if any(t.text in ("^", "!") for t in exponent) or (end < len(tokens) and tokens[end].text == "^"):
                raise Ungradable("a power tower")
            largest = _literal(exponent) or 1.0
            if i > 0 and tokens[i - 1].kind == "close":  # (a^b)^c is a^(b*c)
                largest *= _largest_exponent(tokens[_group_start(tokens, i - 1) : i])
            if largest > MAX_EXPONENT:
                raise Ungradable(f"an exponent above {MAX_EXPONENT}")
        if token.text == "!" and i > 0:
            before = tokens[i - 1]
            if before.kind == "close" or (before.kind == "number" and float(before.text) > MAX_FACTORIAL):
                raise Ungradable(f"a factorial of more than {MAX_FACTORIAL} or of an expression")


# -- parse tree ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    kind: str
    """number | symbol | constant | add | subtract | multiply | divide | power | negate | sqrt | root |
    factorial | function | tuple"""
    value: str = ""
    children: tuple[Node, ...] = ()


_MULTIPLY = {"*", "\\cdot", "\\times"}
_DIVIDE = {"/", "\\div"}
_FUNCTIONS = {"sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "log", "ln", "exp"}
_CONSTANTS = {"\\pi": "pi", "\\infty": "oo"}
_FRACTIONS = {"\\frac", "\\dfrac", "\\tfrac"}
_DROPPED = {"\\left", "\\right", "\\displaystyle", "\\quad", "\\qquad"}


class _Parser:
    """Recursive descent over tokens; recursion depth is bounded by MAX_NESTING and MAX_TOKENS."""

    def __init__(self, tokens: list[Token], *, arithmetic_only: bool) -> None:
        self.tokens = [t for t in tokens if t.text not in _DROPPED]
        self.position = 0
        self.arithmetic_only = arithmetic_only

    def peek(self) -> Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def at(self, text: str) -> bool:
        """Whether the next token is ``text``."""
        token = self.peek()
        return token is not None and token.text == text

    def take(self, text: str | None = None) -> Token:
        token = self.peek()
        if token is None or (text is not None and token.text != text):
            raise OutsideGrammar(f"expected {text or 'more'} at token {self.position}")
        self.position += 1
        return token

    def parse(self) -> Node:
        items = [self.sum()]
        while self.at(",") and not self.arithmetic_only:
            self.take(",")
            items.append(self.sum())
        if self.peek() is not None:
            raise OutsideGrammar(f"unexpected {self.peek().text!r}")  # type: ignore[union-attr]
        return items[0] if len(items) == 1 else Node("tuple", children=tuple(items))

    def sum(self) -> Node:
        node = self.product()
        while (token := self.peek()) is not None and token.text in "+-":
            self.take()
            node = Node("add" if token.text == "+" else "subtract", children=(node, self.product()))
        return node

    def product(self) -> Node:
        node = self.unary()
        while (token := self.peek()) is not None:
            if token.text in _MULTIPLY | _DIVIDE:
                self.take()
                kind = "multiply" if token.text in _MULTIPLY else "divide"
                node = Node(kind, children=(node, self.unary()))
            elif not self.arithmetic_only and self.starts_atom(token):
                node = Node("multiply", children=(node, self.power()))  # implicit: 2x, 2\sqrt{2}, 3(x+1)
            else:
                break
        return node

    def unary(self) -> Node:
        token = self.peek()
        if token is not None and token.text in "+-":
            self.take()
            operand = self.unary()
            return operand if token.text == "+" else Node("negate", children=(operand,))
        return self.power()

    def power(self) -> Node:
        base = self.postfix()
        if self.at("^") and not self.arithmetic_only:
            self.take("^")
            return Node("power", children=(base, self.exponent()))
        return base

    def exponent(self) -> Node:
        if self.at("{"):
            return self.group("{")
        if self.at("-"):
            self.take()
            return Node("negate", children=(self.postfix(),))
        return self.postfix()

    def postfix(self) -> Node:
        node = self.atom()
        while not self.arithmetic_only and self.at("!"):
            self.take("!")
            node = Node("factorial", children=(node,))
        return node

    def starts_atom(self, token: Token) -> bool:
        if token.kind in ("number", "letter"):
            return True
        if token.kind == "open":
            return token.text in "({"
        return token.kind == "command" and (
            token.text in _CONSTANTS or token.text[1:] in _FUNCTIONS or token.text in {*_FRACTIONS, "\\sqrt"}
        )

    def group(self, opening: str) -> Node:
        self.take(opening)
        node = self.sum()
        self.take(_CLOSING[opening])
        return node

    def atom(self) -> Node:
        token = self.peek()
        if token is None:
            raise OutsideGrammar("the answer ends where a number was expected")
        if token.kind == "number":
            self.take()
            if self.arithmetic_only and "." in token.text:
                raise OutsideGrammar(f"{token.text} is not a whole number")
            return Node("number", token.text)
        if token.kind == "open" and token.text in "({":
            return self.group(token.text)
        if self.arithmetic_only:
            raise OutsideGrammar(f"only whole numbers, + - * / and brackets are allowed, found {token.text!r}")
        if token.kind == "letter":
            self.take()
            return Node("symbol", token.text)
        if token.text in _CONSTANTS:
            self.take()
            return Node("constant", _CONSTANTS[token.text])
        if token.text in _FRACTIONS:
            self.take()
            return Node("divide", children=(self.argument(), self.argument()))
        if token.text == "\\sqrt":
            self.take()
            if self.at("["):
                index = self.group("[")
                return Node("root", children=(self.argument(), index))
            return Node("sqrt", children=(self.argument(),))
        if token.kind == "command" and token.text[1:] in _FUNCTIONS:
            self.take()
            return Node("function", token.text[1:], (self.power(),))
        raise OutsideGrammar(f"{token.text!r} is not handled by the fallback parser")

    def argument(self) -> Node:
        """A LaTeX argument: ``{expr}``, or a single digit or letter as in ``\\frac12``."""
        token = self.peek()
        if self.at("{"):
            return self.group("{")
        if token is not None and token.kind == "number":
            self.take()
            if len(token.text) > 1 and "." not in token.text:  # \frac12 is \frac{1}{2}
                self.tokens.insert(self.position, Token("number", token.text[1:]))
                return Node("number", token.text[0])
            return Node("number", token.text)
        return self.atom()


def parse(text: str, *, arithmetic_only: bool = False) -> Node:
    """The parse tree of an answer (already free of ``\\boxed`` and units); raises OutsideGrammar/Ungradable."""
    tokens = tokenize(normalize(text))
    if not tokens:
        raise OutsideGrammar("empty answer")
    return _Parser(tokens, arithmetic_only=arithmetic_only).parse()


# -- values -----------------------------------------------------------------------------------------------


def arithmetic_value(node: Node, used: list[int]) -> Fraction:
    """Exact value of a whole-number ``+ - * /`` tree, recording the numbers used; ZeroDivisionError on /0."""
    if node.kind == "number":
        used.append(int(node.value))
        return Fraction(int(node.value))
    if node.kind == "negate":
        return -arithmetic_value(node.children[0], used)
    left, right = (arithmetic_value(child, used) for child in node.children)
    if node.kind == "add":
        return left + right
    if node.kind == "subtract":
        return left - right
    if node.kind == "multiply":
        return left * right
    return left / right


def _number(text: str) -> sympy.Rational:
    whole, _, fraction = text.partition(".")
    return sympy.Rational(int(whole or "0") * 10 ** len(fraction) + int(fraction or "0"), 10 ** len(fraction))


def value_digits(node: Node) -> float:
    """An upper bound on the decimal digits of any number building ``node`` makes (numerators and denominators
    alike; a symbol counts as one digit, since sympy multiplies out numeric coefficients of symbols); raises
    Ungradable as soon as one node's bound passes ``MAX_VALUE_DIGITS``. Exact for nothing, safe for all: a sum
    adds a digit, a product or quotient adds digits, a power multiplies them by the exponent."""
    if node.kind == "number":
        digits = float(len(node.value.replace(".", "")) or 1)
    elif node.kind in ("symbol", "constant"):
        digits = 1.0
    else:
        parts = [value_digits(child) for child in node.children]
        if node.kind == "power":
            exponent = _literal_value(node.children[1])
            if exponent is None:  # a symbolic exponent: sympy keeps the power unevaluated unless it is small
                exponent = 10.0 ** min(parts[1], 300)
            digits = parts[0] * max(abs(exponent), 1.0)
        elif node.kind == "factorial":
            argument = 10.0 ** min(parts[0], 300)
            digits = argument * max(math.log10(argument), 1.0)
        elif node.kind in ("multiply", "divide"):
            digits = sum(parts)
        elif node.kind in ("add", "subtract", "tuple"):
            digits = max(parts, default=1.0) + 1
        else:  # negate, sqrt, root, function: no larger than their arguments
            digits = max(parts, default=1.0)
    if digits > MAX_VALUE_DIGITS:
        raise Ungradable(f"a value of more than {MAX_VALUE_DIGITS:,} digits")
    return digits


def _literal_value(node: Node) -> float | None:
    """The value of a plain (possibly negated) number node, else None."""
    if node.kind == "negate":
        inner = _literal_value(node.children[0])
        return None if inner is None else -inner
    return float(node.value) if node.kind == "number" else None


def to_sympy(node: Node) -> sympy.Basic:
    """A sympy object built node by node from the tree (never from a string), once the whole tree's sizes are
    bounded (``value_digits``)."""
    value_digits(node)
    return _build(node)


def _build(node: Node) -> sympy.Basic:
    if node.kind == "number":
        return _number(node.value)
    if node.kind == "symbol":
        return sympy.Symbol(node.value)
    if node.kind == "constant":
        return sympy.pi if node.value == "pi" else sympy.oo
    if node.kind == "tuple":
        return sympy.Tuple(*(_build(child) for child in node.children))
    values = [_build(child) for child in node.children]
    if node.kind == "negate":
        return -values[0]
    if node.kind == "add":
        return values[0] + values[1]
    if node.kind == "subtract":
        return values[0] - values[1]
    if node.kind == "multiply":
        return values[0] * values[1]
    if node.kind == "divide":
        return values[0] / values[1]
    if node.kind == "power":
        exponent = values[1]
        if exponent.is_number and abs(exponent) > MAX_EXPONENT:
            raise Ungradable(f"an exponent above {MAX_EXPONENT}")
        return values[0] ** exponent
    if node.kind == "sqrt":
        return sympy.sqrt(values[0])
    if node.kind == "root":
        return sympy.root(values[0], values[1])
    if node.kind == "factorial":
        if values[0].is_number and abs(values[0]) > MAX_FACTORIAL:
            raise Ungradable(f"a factorial of more than {MAX_FACTORIAL}")
        return sympy.factorial(values[0])
    if node.kind == "function":
        function = {"ln": sympy.log}.get(node.value) or getattr(sympy, node.value.replace("arc", "a"))
        return function(values[0])
    raise OutsideGrammar(f"no value for node {node.kind}")
