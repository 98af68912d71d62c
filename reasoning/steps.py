"""Pieces every step-wise method shares: agents for thinking, judging and analysing, their parsers,
and the vote over final answers."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field

from agents.runtime import Agent
from backends import Constraint, record_event
from reasoning.answers import stated_answer
from reasoning.context import RunContext

SCORE_PATTERN = r"(0(\.[0-9]{1,2})?|1(\.0)?)"
DEFAULT_SCORE = 0.5


def final_answer(step: str) -> str | None:
    """The answer a step states with a closing marker; None for an ordinary step (see ``reasoning.answers``)."""
    return stated_answer(step)


def parse_score(text: str) -> float:
    """The first number in [0, 1]; otherwise DEFAULT_SCORE, counted as a parse failure."""
    for match in re.findall(r"\d+(?:\.\d+)?", text):
        value = float(match)
        if 0.0 <= value <= 1.0:
            return value
    record_event("parse_failure")
    return DEFAULT_SCORE


@dataclass
class Analysis:
    bad_steps: list[int] = field(default_factory=list)
    """1-based indices of the steps the analyst names as wrong (unvalidated: callers check the range)."""
    text: str = ""

    @property
    def finds_error(self) -> bool:
        return bool(self.bad_steps)


def parse_analysis(text: str) -> Analysis:
    """JSON from constrained output, else "bad step(s): 2, 3" in free text; nothing parseable counts."""
    try:
        data = json.loads(text)
        steps = [int(i) for i in data.get("bad_steps", []) if isinstance(i, int | float | str) and str(i).isdigit()]
        return Analysis(steps, f"{data.get('analysis', '')} {data.get('advice', '')}".strip())
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        pass
    found = re.search(r"bad steps?(?: index(?:es)?)?\s*:?\s*([\d,\s]+)", text, re.IGNORECASE)
    if found is None:
        if not re.search(r"no (errors?|mistakes?|bad steps?)|all (the )?steps are (right|correct)", text, re.I):
            record_event("parse_failure")
        return Analysis([], text)
    return Analysis([int(i) for i in re.findall(r"\d+", found.group(1))], text)


ANALYSIS_SCHEMA = {
    "type": "object",
    "properties": {
        "bad_steps": {"type": "array", "items": {"type": "integer"}, "maxItems": 5},
        "analysis": {"type": "string", "maxLength": 300},
        "advice": {"type": "string", "maxLength": 200},
    },
    "required": ["bad_steps", "analysis", "advice"],
}


def thinker(context: RunContext, *, max_tokens: int, stop: tuple[str, ...] = ("\n",)) -> Agent[str]:
    return Agent("step/thinker", context.backend, context.budget, max_tokens=max_tokens, stop=stop)


def judge(context: RunContext) -> Agent[float]:
    return Agent(
        "step/judge",
        context.backend,
        context.budget,
        parse=parse_score,
        constraint=Constraint.regex(SCORE_PATTERN),
        max_tokens=8,
    )


def analyst(context: RunContext, *, max_tokens: int = 256) -> Agent[Analysis]:
    return Agent(
        "analysis/chain",
        context.backend,
        context.budget,
        parse=parse_analysis,
        constraint=Constraint.schema(ANALYSIS_SCHEMA),
        max_tokens=max_tokens,
    )


def majority_vote(answers: list[str]) -> tuple[str | None, Counter[str]]:
    votes = Counter(a for a in answers if a)
    return (votes.most_common(1)[0][0] if votes else None), votes


def weighted_vote(weighted: list[tuple[str, float]]) -> tuple[str | None, Counter[str]]:
    totals: Counter[str] = Counter()
    for answer, weight in weighted:
        if answer:
            totals[answer] += weight
    return (max(totals, key=lambda a: totals[a]) if totals else None), totals
