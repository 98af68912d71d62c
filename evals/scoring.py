"""Turn a method's Solution into a graded prediction, per dataset."""

from __future__ import annotations

from dataclasses import dataclass

from evals.datasets import Problem
from evals.graders import check_game24, extract_choice, extract_game24, extract_gsm8k, math_equal, numbers_equal
from reasoning.solution import Solution


@dataclass(frozen=True)
class Score:
    prediction: str | None
    correct: bool
    strict: bool | None = None
    """GSM8K only: the reasoning states the right answer in the asked-for format."""
    flexible: bool | None = None
    """GSM8K only: the last number of the reasoning is right."""


def score(dataset: str, problem: Problem, solution: Solution) -> Score:
    answer, reasoning = solution.answer, solution.reasoning
    if dataset == "gsm8k":
        return Score(
            answer,
            numbers_equal(answer, problem.gold),
            strict=numbers_equal(extract_gsm8k(reasoning, "strict"), problem.gold),
            flexible=numbers_equal(extract_gsm8k(reasoning, "flexible"), problem.gold),
        )
    if dataset in ("math", "math500"):
        return Score(answer, math_equal(answer, problem.gold))
    if dataset == "game24":
        expression = answer if answer and any(op in answer for op in "+-*/") else extract_game24(reasoning)
        return Score(expression, bool(expression) and check_game24(expression, problem.metadata["numbers"]))
    if dataset == "aqua":
        letter = extract_choice(answer or "") or extract_choice(reasoning)
        return Score(letter, letter == problem.gold)
    raise ValueError(f"no scoring rule for dataset {dataset!r}")
