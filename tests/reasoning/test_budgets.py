"""Budgets are hard limits under real concurrency: every method x every budget kind x several limits.

The ScriptedBackend test double yields to the event loop on every request, so a method's parallel
branches really are in flight together here, as they are on a real engine."""

from __future__ import annotations

import json
import time

import pytest

from thoughtgraph.agents.runtime import Budget, BudgetExceeded
from thoughtgraph.backends import Request
from thoughtgraph.backends.scripted import ScriptedBackend, ScriptRule
from thoughtgraph.reasoning import METHODS, solve

NO_ERROR = json.dumps({"bad_steps": [], "analysis": "all right", "advice": "none"})
STEP_ONE = json.dumps({"bad_steps": [1], "analysis": "step 1 is wrong", "advice": "recompute"})


def backend(latency: float = 0.0) -> ScriptedBackend:
    """Answers every role of every method: judges, analysts, value words, steps and whole chains."""
    return ScriptedBackend(
        [
            ScriptRule("You plan how to solve", ["compute", "continue"], cycle=True),
            ScriptRule("You grade reasoning", ["0.7"]),
            ScriptRule("You check reasoning", [STEP_ONE, NO_ERROR], cycle=True),
            ScriptRule("Evaluate whether", ["likely"]),
            ScriptRule("only the final answer", ["6"]),
            ScriptRule("Write step|step by step|one step at a time", ["Add them: 2 + 4 = 6.", "The answer is 6."],
                       cycle=True),
        ],
        default="2 + 4 = 6.\nThe answer is 6.",
        latency_seconds=latency,
    )  # fmt: skip


def run(method: str, latency: float = 0.0, **budget):
    return solve("What is 2 + 4?", method, backend(latency), **METHODS[method].tiny, **budget)


def test_the_smallest_case_from_the_issue_best_of_n_with_two_calls():
    solution = solve("q?", "bon", backend(0.001), samples=2, max_calls=2)
    assert solution.usage["calls"] <= 2
    assert solution.stopped_by == "max_calls=2 reached"


def test_a_request_is_clamped_to_the_tokens_left_and_one_that_cannot_fit_is_not_sent():
    solution = solve("What is 2 + 4?", "cot", backend(), max_tokens=3)
    assert solution.usage["calls"] == 0 and solution.usage["total_tokens"] == 0  # the prompt alone is over 3
    assert solution.stopped_by == "max_tokens=3 reached"
    budget = Budget(max_tokens=50)
    request = Request.chat(("user", "a b c"), max_tokens=100, n=2)
    with budget.reserve(request, lambda _: 10) as affordable:
        assert affordable.max_tokens == 20  # (50 - 10) // 2
        assert budget.tokens_committed == 50 and budget.calls_committed == 1
        # nothing is left for a second request while this one is in flight
        with pytest.raises(BudgetExceeded), budget.reserve(request, lambda _: 1):
            pass
    assert budget.tokens_committed == 0 and budget.calls_committed == 0
    assert budget.bound_by == "max_tokens=50 reached"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("limit", [1, 2, 3, 5, 8])
def test_calls_never_exceed_max_calls(method, limit):
    unlimited = run(method).usage
    solution = run(method, max_calls=limit)
    assert solution.usage["calls"] <= limit
    if unlimited["calls"] > limit:
        assert solution.stopped_by == f"max_calls={limit} reached"
    else:
        assert solution.stopped_by is None and solution.usage["calls"] == unlimited["calls"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("limit", [5, 40, 120, 400])
def test_tokens_never_exceed_max_tokens(method, limit):
    unlimited = run(method).usage
    solution = run(method, max_tokens=limit)
    assert solution.usage["total_tokens"] <= limit
    if unlimited["total_tokens"] > limit:
        assert solution.stopped_by == f"max_tokens={limit} reached"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("limit", [0.05, 0.2])
def test_time_never_exceeds_max_seconds(method, limit):
    started = time.monotonic()
    solution = run(method, latency=0.03, max_seconds=limit)
    assert time.monotonic() - started < limit + 0.5
    unlimited_started = time.monotonic()
    run(method, latency=0.03)
    if time.monotonic() - unlimited_started > limit + 0.05:
        assert solution.stopped_by == f"max_seconds={limit} reached"
