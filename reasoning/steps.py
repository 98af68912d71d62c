"""Pieces every step-wise method shares: agents for thinking, judging and analysing, their parsers,
and the vote over final answers."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field

from thoughtgraph.agents.runtime import Agent
from thoughtgraph.backends import Constraint, record_event
from thoughtgraph.reasoning.context import RunContext

SCORE_PATTERN = r"(0(\.[0-9]{1,2})?|1(\.0)?)"
DEFAULT_SCORE = 0.5


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
    understood: bool = True
    """False when nothing in the reply could be read as a verdict (counted as a parse failure): then
    the reply is neither "no error" nor an error report, and methods go on as if no analysis ran."""

    @property
    def finds_error(self) -> bool:
        return bool(self.bad_steps)

    @property
    def finds_no_error(self) -> bool:
        """The analyst said in so many words that the chain is right."""
        return self.understood and not self.bad_steps


_FENCED = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)
_BAD_STEP_LIST = re.compile(r"bad[ _]steps?(?:[ _]ind(?:ex|ices|exes))?\W{0,4}((?:\d+[\s,and]*)+)", re.IGNORECASE)
_STEP_IS_WRONG = re.compile(
    r"\bstep\s*(\d+)\s*(?:is|was|seems|looks)\s*(?:wrong|incorrect|not correct|flawed|erroneous|a mistake)"
    r"|\b(?:error|mistake)s?\s*(?:is\s*)?in\s*step\s*(\d+)",
    re.IGNORECASE,
)
_NO_ERROR = re.compile(
    r"\bno (?:errors?|mistakes?|bad steps?)\b|all (?:the )?steps are (?:right|correct)|(?:the )?(?:chain|solution|"
    r"reasoning) is (?:entirely |fully )?correct",
    re.IGNORECASE,
)


def _json_analysis(text: str) -> Analysis | None:
    for candidate in (text, *(m.group(1) for m in _FENCED.finditer(text)), text[text.find("{") : text.rfind("}") + 1]):
        try:
            data = json.loads(candidate)
        except (json.JSONDecodeError, TypeError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("bad_steps", []), list):
            steps = [int(i) for i in data.get("bad_steps", []) if str(i).strip().isdigit()]
            return Analysis(steps, f"{data.get('analysis', '')} {data.get('advice', '')}".strip())
    return None


def parse_analysis(text: str) -> Analysis:
    """An analyst's verdict: JSON (constrained output, or a JSON object anywhere, fenced or not), else free
    text ("Bad step index: 2, 3", "Step 2 is wrong", "the error is in step 4", "No errors"). A reply with no
    verdict is ``understood=False`` and counted as a parse failure, never read as "no error"."""
    parsed = _json_analysis(text)
    if parsed is not None:
        return parsed
    listed = _BAD_STEP_LIST.search(text)
    if listed:
        return Analysis([int(i) for i in re.findall(r"\d+", listed.group(1))], text)
    named = sorted({int(a or b) for a, b in _STEP_IS_WRONG.findall(text)})
    if named:
        return Analysis(named, text)
    if _NO_ERROR.search(text):
        return Analysis([], text)
    record_event("parse_failure")
    return Analysis([], text, understood=False)


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
