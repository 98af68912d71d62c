"""The final answer stated in free model text, whole: ``\\boxed{}``, ``#### x``, "The answer is x", "Answer: x".

One extraction serves every method and the evals graders (which then decide equivalence). It
returns the whole stated answer ("3/4", ``\\frac{1}{2}``, ``10^3``, "-7", "(1, 2]"), with
thousands separators, currency signs, markdown and trailing units removed from plain numbers.

A text *states* an answer only with a closing marker: ``\\boxed{...}``, ``#### x``, "the answer is x"
where x looks like an answer (a number, maths, or a choice letter), or "answer: x" at the start of
a line (then any x). Mentioning the word is not stating one: "To find the answer: halve 48" and
"The answer is unclear yet." state nothing.

Model text is data: nothing here evaluates it, only the last ``MAX_SCAN_CHARS`` characters are
read, and the whole scan is linear in them: braces are matched once for the whole text, markers are
read from the last one back (the first that states something wins), and what follows a marker is read
up to ``MAX_ANSWER_CHARS`` characters only. A 1 MB reply of nothing but markers costs milliseconds.
"""

from __future__ import annotations

import re

MAX_SCAN_CHARS = 20_000
MAX_ANSWER_CHARS = 1_000
"""Longest stretch after an "answer" marker read as its answer (a longer sentence is cut there)."""
NUMBER_PATTERN = r"-?[0-9][0-9,]{0,15}(\.[0-9]{1,4})?"
"""A numeric final answer asked for alone, as a constraint: at most 16 digits and commas and 4 decimals, so that
a constrained small model cannot spend the answer's whole budget on "16.0000000000000" (seen with the unbounded
pattern on GSM8K: every digit a token)."""
ANSWER_STATED_PATTERN = (
    r"(?i:(?:\b(?:final\s+)?answer\s+is\b[ \t]*:?[ \t]*(?:\*\*)?[-−$\d\\(]|\\boxed\{)[^\n]*?(?:\.[ \t]|\n))"
)
"""A request's ``stop_pattern`` for whole chains: generation ends once the final answer has been stated
in the form the prompts ask for ("The answer is x." or ``\boxed{x}``) and its sentence or line is over,
instead of running on to the token limit repeating it. ``#### x`` does not stop a chain: small models
write a stray "#### 1" before stating their real answer."""

_MARKER = re.compile(
    r"(?P<boxed>\\(?:boxed|fbox)\{)"
    r"|(?P<hashes>####[ \t]*)"
    r"|(?P<answer_is>\b(?:final\s+)?answer\s+is\b[ \t]*(?P<colon>:)?[ \t]*)"
    r"|(?P<answer_colon>(?:^|\n)[ \t>#*_]*(?:the\s+)?(?:final\s+)?answer[ \t*_]*:[ \t]*)",
    re.IGNORECASE,
)
# what "the answer is" must be followed by to count: a number, maths, a bracket, or a choice letter
_LOOKS_LIKE_ANSWER = re.compile(r"[-−+]?[\d$\\({\[]|\.\d|[A-E](?:[.)]|[ \t]*(?:\n|$))|[a-zA-Z]\s*(?:=|<|>|\\[lg]eq?\b)")
_SENTENCE_END = re.compile(r"\.(?=\s|$)|\n|(?<=[\d)}\]])[,;]\s+(?:so|and|which|because|since)\b")
_PLAIN_NUMBER = re.compile(r"(?P<number>[-−]?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)(?P<rest>.*)", re.DOTALL)
_UNIT_WORDS = re.compile(r"\s*(?:%|[A-Za-z°][A-Za-z°'\s.]*)?")
_NUMBER = re.compile(r"-?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_EQUATION = re.compile(r"(?!.*,\s)[^=]*[^=<>!\\]=(?P<value>[^=]+)", re.DOTALL)  # no ", ": not a tuple


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), with nested braces matched."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    return _braced(text, text.index("{", start) + 1)


def _braced(text: str, begin: int) -> str | None:
    """Text from ``begin`` to the brace that closes the one just before it; None when unbalanced."""
    depth, i = 1, begin
    while i < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[begin : i - 1].strip() if depth == 0 else None


def clean_answer(stated: str) -> str:
    """A stated answer as a grader wants it: markdown, ``$...$`` and trailing punctuation removed; of an
    equation, its right-hand side; a plain number without thousands separators, currency or unit words
    ("$1,250 dollars" -> "1250", "2 * 1.5 = 3 bolts" -> "3")."""
    text = stated.strip().strip("*_").strip()
    boxed = last_boxed(text)
    if boxed is not None:
        text = boxed
    for opening, closing in (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if len(text) > len(opening) + len(closing) and text.startswith(opening) and text.endswith(closing):
            text = text[len(opening) : -len(closing)].strip()
    text = text.rstrip(".!,;:").strip().strip("*_").strip()
    equation = _EQUATION.fullmatch(text)
    if equation:  # "2 * 1.5 = 3 bolts", "x = 5": the value is the right-hand side
        text = equation.group("value").strip()
    number = _PLAIN_NUMBER.fullmatch(text)
    if number and _UNIT_WORDS.fullmatch(number.group("rest")):
        text = number.group("number")
        text = text.replace("$", "").replace(",", "").replace(" ", "").replace("−", "-")
    return text


def _closing_braces(text: str) -> dict[int, int]:
    """Position of each ``{`` -> position of the ``}`` that closes it (unclosed ones absent), in one pass."""
    closing, open_positions = {}, []
    for brace in re.finditer(r"[{}]", text):
        if brace.group() == "{":
            open_positions.append(brace.start())
        elif open_positions:
            closing[open_positions.pop()] = brace.start()
    return closing


def _stated_value(text: str, match: re.Match[str], closing: dict[int, int]) -> str | None:
    """The answer a marker introduces, or None when the marker states nothing."""
    if match.group("boxed"):
        end = closing.get(match.end() - 1)
        value = text[match.end() : end].strip() if end is not None else None
        return clean_answer(value) if value else None
    rest = text[match.end() : match.end() + MAX_ANSWER_CHARS]
    if match.group("answer_is") and not match.group("colon") and not _LOOKS_LIKE_ANSWER.match(rest.lstrip("*_ ")):
        return None
    end = _SENTENCE_END.search(rest)
    value = clean_answer(rest[: end.start()] if end else rest)
    return value or None


def stated_answer(text: str) -> str | None:
    """The last answer the text states with a marker; None when it states none (the word alone is not one)."""
    text = text[-MAX_SCAN_CHARS:]
    markers = list(_MARKER.finditer(text))
    if not markers:
        return None
    closing = _closing_braces(text) if "{" in text else {}
    for match in reversed(markers):
        value = _stated_value(text, match, closing)
        if value is not None:
            return value
    return None


def extract_answer(text: str) -> str | None:
    """The stated answer, else the last number in the text; None when there is neither."""
    stated = stated_answer(text)
    if stated is not None:
        return stated
    numbers = _NUMBER.findall(text[-MAX_SCAN_CHARS:])
    return clean_answer(numbers[-1]) if numbers else None
