"""Pull a final answer out of free model text: ``\\boxed{}``, ``#### n``, "The answer is ...", last number.

Dataset graders (``evals.graders``) decide equivalence; this only finds the candidate string.
"""

from __future__ import annotations

import re

NUMBER_PATTERN = r"-?[0-9][0-9,]*(\.[0-9]+)?"
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
_ANSWER_IS = re.compile(r"answer\s*(?:is|:)\s*:?\s*(.+)", re.IGNORECASE)
_HASHES = re.compile(r"####\s*(.+)")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), with nested braces matched."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth, begin = 1, i
    while i < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[begin : i - 1].strip() if depth == 0 else None


def clean_number(text: str) -> str:
    return text.replace(",", "").replace("$", "").rstrip(".")


def extract_answer(text: str) -> str | None:
    """The most explicit answer marker present wins; None when the text has no answer at all."""
    boxed = last_boxed(text)
    if boxed:
        return boxed
    for pattern in (_HASHES, _ANSWER_IS):
        matches = pattern.findall(text)
        if matches:
            stated = matches[-1].strip().rstrip(".").strip()
            number = _NUMBER.search(stated)
            return clean_number(number.group()) if number else stated or None
    numbers = _NUMBER.findall(text)
    return clean_number(numbers[-1]) if numbers else None
