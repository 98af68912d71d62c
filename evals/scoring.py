"""Turn a method's Solution into a graded prediction: one scorer per kind of answer (a number, mathematics,
a Game of 24 expression, an option letter). A dataset's spec names its scorer
(:class:`~thoughtgraph.evals.datasets.DatasetSpec`); :func:`~thoughtgraph.evals.datasets.grade` is the pure
grading step, which the eval runner calls through :mod:`evals.sandbox` to bound its time and memory. An
answer the graders cannot judge within their limits gives a Score with ``ungradable`` set (counted in
results.json), never an exception that ends a run.
"""

from __future__ import annotations

from collections.abc import Callable
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
    from thoughtgraph.evals.datasets import DatasetSpec, Problem
    from thoughtgraph.reasoning.solution import Solution


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


Scorer = Callable[["GradingInput"], "Score"]


@dataclass(frozen=True)
class GradingInput:
    """Everything grading needs, as plain data (it crosses a process boundary)."""

    dataset: str
    answer: str | None
    reasoning: str
    gold: str
    numbers: list[int] | None = None
    """Game of 24: the four numbers to use."""
    scorer: str | None = None
    """``module:function`` of the scorer of a dataset registered outside thoughtgraph (the grading process
    imports it; built-in datasets are found by name)."""

    @classmethod
    def of(cls, spec: DatasetSpec, problem: Problem, solution: Solution) -> GradingInput:
        scorer = f"{spec.score.__module__}:{spec.score.__qualname__}"
        answer, reasoning, numbers = solution.answer, solution.reasoning or "", problem.metadata.get("numbers")
        return cls(spec.name, answer, reasoning, problem.gold, numbers, scorer)


def graded(item: GradingInput, scorer: Scorer) -> Score:
    """``scorer(item)``, with an answer beyond the graders' limits recorded as ungradable."""
    try:
        return scorer(item)
    except Ungradable as error:
        return Score(item.answer, False, ungradable=str(error))


def score_gsm8k(item: GradingInput) -> Score:
    """The method's answer as a number; strict and flexible as lm-evaluation-harness reads the reasoning."""
    return Score(
        item.answer,
        numbers_equal(item.answer, item.gold),
        strict=numbers_equal(extract_gsm8k(item.reasoning, "strict"), item.gold),
        flexible=numbers_equal(extract_gsm8k(item.reasoning, "flexible"), item.gold),
    )


def score_math(item: GradingInput) -> Score:
    """The method's answer against the gold as mathematics (equivalent forms count)."""
    return Score(item.answer, math_equal(item.answer, item.gold))


def score_game24(item: GradingInput) -> Score:
    """The answer if it is an expression, else the last expression of the reasoning: does it make 24 from
    exactly the puzzle's four numbers?"""
    answer = item.answer
    prediction = answer if answer and any(op in answer for op in "+-*/") else extract_game24(item.reasoning)
    return Score(prediction, bool(prediction) and check_game24(prediction or "", item.numbers or []))


def score_choice(item: GradingInput) -> Score:
    """The option letter of the answer (else of the reasoning) against the gold letter."""
    prediction = extract_choice(item.answer or "") or extract_choice(item.reasoning)
    return Score(prediction, prediction == item.gold)
