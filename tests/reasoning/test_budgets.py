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
    # best-of-2 needs 3 calls; 2 hold one chain of thought and its answer asked for alone, and that answers
    solution = solve("q?", "bon", backend(0.001), samples=2, max_calls=2)
    assert solution.usage["calls"] <= 2 and solution.answer == "6"
    assert solution.stopped_by == "max_calls=2: too small for bon beside a reserve chain; one chain of thought answered"


def test_a_request_is_clamped_to_the_tokens_left_and_one_that_cannot_fit_is_not_sent():
    solution = solve("What is 2 + 4?", "cot", backend(), max_tokens=3)
    assert solution.usage["calls"] == 0 and solution.usage["total_tokens"] == 0  # the prompt alone is over 3
    assert solution.stopped_by.startswith("max_tokens=3: too small for one chain of thought, which needs 1 call")
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
    assert solution.answer == "6"  # one call holds a chain of thought, and every chain here reaches 6
    if solution.stopped_by is None:
        assert solution.usage["calls"] == unlimited["calls"]  # the method ran as configured
    else:
        assert solution.stopped_by.startswith(f"max_calls={limit}")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("limit", [5, 40, 120, 400])
def test_tokens_never_exceed_max_tokens(method, limit):
    unlimited = run(method).usage
    solution = run(method, max_tokens=limit)
    assert solution.usage["total_tokens"] <= limit
    if unlimited["total_tokens"] > limit:
        assert solution.stopped_by.startswith(f"max_tokens={limit}")
    if solution.answer is None:  # only when not even one chain fits
        assert "too small for one chain of thought" in solution.stopped_by
    else:
        assert solution.answer == "6"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("limit", [0.05, 0.2])
def test_time_never_exceeds_max_seconds(method, limit):
    started = time.monotonic()
    solution = run(method, latency=0.03, max_seconds=limit)
    assert time.monotonic() - started < limit + 0.5
    unlimited_started = time.monotonic()
    unlimited = run(method, latency=0.03)
    unlimited_seconds = time.monotonic() - unlimited_started
    if solution.usage["calls"] < unlimited.usage["calls"]:  # cut short: the run says why
        assert solution.stopped_by == f"max_seconds={limit} reached"
    if unlimited_seconds > 2 * limit + 0.1:  # the whole run clearly needs longer: the limit must have bitten
        assert solution.stopped_by == f"max_seconds={limit} reached"
    # (a run whose last call, started before the deadline, ends just after it has done no work past the limit;
    # comparing two wall-clock runs that both end near the limit was flaky)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("budget", [{"max_calls": 1}, {"max_calls": 8}, {"max_tokens": 400}, {"max_tokens": 1000}])
def test_a_budget_one_chain_fits_into_buys_an_answer_with_the_default_config(method, budget):
    solution = solve("What is 2 + 4?", method, backend(), **budget)
    assert solution.answer == "6", solution.stopped_by
    assert solution.usage["calls"] <= budget.get("max_calls", 10**6)
    assert solution.usage["total_tokens"] <= budget.get("max_tokens", 10**9)


def test_a_budget_smaller_than_one_chain_says_what_one_chain_needs():
    solution = solve("What is 2 + 4?", "gg", backend(), max_tokens=30)
    assert solution.answer is None and solution.usage["calls"] == 0
    assert solution.stopped_by.startswith("max_tokens=30: too small for one chain of thought, which needs 1 call")
    assert "written)" in solution.why_no_answer()


def test_a_small_budget_shrinks_the_method_and_names_what_changed():
    solution = solve("What is 2 + 4?", "sc", backend(), samples=8, max_tokens=800)
    assert solution.usage["events"]["fitted_to_budget"] == 1
    assert "sc shrunk to fit (samples 8->" in solution.stopped_by
    assert solution.answer == "6"
