"""Translate regex and choice constraints into GBNF, llama.cpp's grammar language.

JSON schemas go through llama-cpp-python's own converter; this module covers the other two
constraint kinds. The regex translation walks Python's own parse of the pattern, so it accepts
exactly Python's syntax, and supports what output constraints need: literals, classes, ``.``,
groups, alternation and every quantifier. Anchors are dropped (a constraint always matches the
whole output); look-arounds and back-references have no grammar equivalent and are refused.
"""

from __future__ import annotations

import re
from re import _constants as c  # type: ignore[attr-defined]
from re import _parser as parser  # type: ignore[attr-defined]

from thoughtgraph.backends.errors import InvalidRequestError
from thoughtgraph.backends.types import Constraint

_CATEGORIES = {
    c.CATEGORY_DIGIT: "0-9",
    c.CATEGORY_WORD: "a-zA-Z0-9_",
    c.CATEGORY_SPACE: " \\t\\n\\r\\x0B\\x0C",
}
_NEGATED_CATEGORIES = {
    c.CATEGORY_NOT_DIGIT: c.CATEGORY_DIGIT,
    c.CATEGORY_NOT_WORD: c.CATEGORY_WORD,
    c.CATEGORY_NOT_SPACE: c.CATEGORY_SPACE,
}


def _char(code: int) -> str:
    ch = chr(code)
    if (ch.isalnum() and code < 128) or ch in " !#$%&'()*+,./:;<=>?@_`{|}~":
        return ch
    return f"\\x{code:02X}" if code < 0x100 else f"\\u{code:04X}" if code < 0x10000 else f"\\U{code:08X}"


def _literal(text: str) -> str:
    def escape(ch: str) -> str:
        if ch == '"':
            return '\\"'
        return ch if " " <= ch <= "~" and ch != "\\" else _char(ord(ch))

    return '"' + "".join(escape(ch) for ch in text) + '"'


def _class_body(items: list) -> tuple[str, bool]:
    negate, parts = False, []
    for op, av in items:
        if op is c.NEGATE:
            negate = True
        elif op is c.LITERAL:
            parts.append(_char(av))
        elif op is c.RANGE:
            parts.append(f"{_char(av[0])}-{_char(av[1])}")
        elif op is c.CATEGORY and av in _CATEGORIES:
            parts.append(_CATEGORIES[av])
        else:
            raise InvalidRequestError(f"regex constraint: character-class item {op} {av} has no grammar form")
    return "".join(parts), negate


def _node(op, av) -> str:
    if op is c.LITERAL:
        return _literal(chr(av))
    if op is c.NOT_LITERAL:
        return f"[^{_char(av)}]"
    if op is c.ANY:
        return "[^\\n]"
    if op is c.IN:
        body, negate = _class_body(av)
        return f"[{'^' if negate else ''}{body}]"
    if op is c.CATEGORY:
        if av in _CATEGORIES:
            return f"[{_CATEGORIES[av]}]"
        if av in _NEGATED_CATEGORIES:
            return f"[^{_CATEGORIES[_NEGATED_CATEGORIES[av]]}]"
    if op is c.BRANCH:
        return "(" + " | ".join(_sequence(branch) for branch in av[1]) + ")"
    if op is c.SUBPATTERN:
        return f"({_sequence(av[-1])})"
    if op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
        low, high, item = av
        inner = f"({_sequence(item)})"
        if (low, high) == (0, c.MAXREPEAT):
            return inner + "*"
        if (low, high) == (1, c.MAXREPEAT):
            return inner + "+"
        if (low, high) == (0, 1):
            return inner + "?"
        return inner + (f"{{{low},}}" if high == c.MAXREPEAT else f"{{{low},{high}}}")
    if op is c.AT:
        return ""
    raise InvalidRequestError(f"regex constraint: {op} has no grammar equivalent (look-arounds, back-references)")


def _sequence(pattern) -> str:
    parts = [_node(op, av) for op, av in pattern]
    return " ".join(p for p in parts if p) or '""'


def regex_to_gbnf(pattern: str) -> str:
    try:
        parsed = parser.parse(pattern)
    except re.error as error:
        raise InvalidRequestError(f"regex constraint {pattern!r} is not a valid regex: {error}") from None
    return f"root ::= {_sequence(parsed)}\n"


def choice_to_gbnf(choices: tuple[str, ...]) -> str:
    return "root ::= " + " | ".join(_literal(choice) for choice in choices) + "\n"


def constraint_to_gbnf(constraint: Constraint) -> str:
    if constraint.kind == "regex":
        assert constraint.pattern is not None
        return regex_to_gbnf(constraint.pattern)
    if constraint.kind == "choice":
        assert constraint.choices is not None
        return choice_to_gbnf(constraint.choices)
    raise InvalidRequestError(f"no GBNF translation for {constraint.kind} constraints here")
