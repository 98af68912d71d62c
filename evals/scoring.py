"""Turn a method's Solution into a graded prediction, per dataset.

:func:`grade` is the pure grading step; the eval runner calls it through :mod:`evals.sandbox`, which
bounds its time and memory. An answer the graders cannot judge within their limits gives a Score
with ``ungradable`` set (counted in results.json), never an exception that ends a run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from thoughtgraph.evals.graders import (
    check_game24,
    extract_choice,
    extract_game24,
    extract_gsm8k,
    math_equal,
    numbers_equal,
)
from thoughtgraph.evals.mathparse import Ungradable

if TYPE_CHECKING:
    from thoughtgraph.evals.datasets import Problem
    from thoughtgraph.reasoning.solution import Solution

DATASETS_GRADED = ("gsm8k", "math", "math500", "game24", "aqua")


@dataclass(frozen=True)
class Score:
    prediction: str | None
    correct: bool
    strict: bool | None = None
    """GSM8K only: the reasoning states the right answer in the asked-for format."""
    flexible: bool | None = None
    """GSM8K only: the last number of the reasoning is right."""
    ungradable: str | None = None
    """Why the answer could not be graded within the limits (then ``correct`` is False)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GradingInput:
    """Everything grading needs, as plain data (it crosses a process boundary)."""

    dataset: str
    answer: str | None
    reasoning: str
    gold: str
    numbers: list[int] | None = None
    """Game of 24: the four numbers to use."""

    @classmethod
    def of(cls, dataset: str, problem: Problem, solution: Solution) -> GradingInput:
        return cls(dataset, solution.answer, solution.reasoning or "", problem.gold, problem.metadata.get("numbers"))


def _prediction(item: GradingInput) -> str | None:
    if item.dataset == "game24":
        answer = item.answer
        return answer if answer and any(op in answer for op in "+-*/") else extract_game24(item.reasoning)
    if item.dataset == "aqua":
        return extract_choice(item.answer or "") or extract_choice(item.reasoning)
    return item.answer


def grade(item: GradingInput) -> Score:
    """The Score of one answer. Raises ValueError only for a dataset without a grading rule."""
    if item.dataset not in DATASETS_GRADED:
        raise ValueError(f"no scoring rule for dataset {item.dataset!r}")
    prediction = _prediction(item)
    try:
        if item.dataset == "gsm8k":
            return Score(
                prediction,
                numbers_equal(prediction, item.gold),
                strict=numbers_equal(extract_gsm8k(item.reasoning, "strict"), item.gold),
                flexible=numbers_equal(extract_gsm8k(item.reasoning, "flexible"), item.gold),
            )
        if item.dataset in ("math", "math500"):
            return Score(prediction, math_equal(prediction, item.gold))
        if item.dataset == "game24":
            return Score(prediction, bool(prediction) and check_game24(prediction or "", item.numbers or []))
        return Score(prediction, prediction == item.gold)
    except Ungradable as error:
        return Score(prediction, False, ungradable=str(error))
