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
    """The last explicit answer marker in the text wins; else the last number; None when there is none."""
    marked: list[tuple[int, str]] = []
    boxed_at = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    boxed = last_boxed(text)
    if boxed:
        marked.append((boxed_at, boxed))
    for pattern in (_HASHES, _ANSWER_IS):
        for match in pattern.finditer(text):
            stated = match.group(1).strip().rstrip(".").strip()
            number = _NUMBER.search(stated)
            value = clean_number(number.group()) if number else stated
            if value:
                marked.append((match.start(), value))
    if marked:
        return max(marked)[1]
    numbers = _NUMBER.findall(text)
    return clean_number(numbers[-1]) if numbers else None
