"""Budgets and the small-budget fitting at their boundaries, worked out by hand: a limit exactly spent, a worst
case exactly fitting, the reserve for one chain of thought, and what the method's ``fit`` is allowed."""

import asyncio
import dataclasses
import math
import time

import pytest

from thoughtgraph.agents.runtime import Budget, BudgetExceeded
from thoughtgraph.backends import UsageLedger
from thoughtgraph.backends.scripted import ScriptedBackend, ScriptRule
from thoughtgraph.reasoning.context import RunContext
from thoughtgraph.reasoning.cot import solver
from thoughtgraph.reasoning.fitting import ANSWER_TOKENS, MIN_CHAIN_TOKENS, run_within_budget
from thoughtgraph.reasoning.outcome import Outcome
from thoughtgraph.reasoning.spec import MethodSpec

QUESTION = "What is 2 + 4?"


def test_budget_exceeded_carries_its_reason():
    budget = Budget(max_calls=1)
    budget.ledger.calls = 1
    with pytest.raises(BudgetExceeded) as raised:
        budget.check()
    assert raised.value.reason == "max_calls=1 reached" and str(raised.value) == "max_calls=1 reached"
    assert budget.bound_by == "max_calls=1 reached"


def test_an_infinite_limit_is_refused():
    with pytest.raises(ValueError, match="max_seconds must be positive and finite"):
        Budget(max_seconds=math.inf)


def test_tokens_exactly_spent_stop_the_run_and_one_left_does_not():
    budget = Budget(max_tokens=100)
    with budget.holding_back(0, 99):
        assert budget.tokens_left() == 1 and budget.exceeded() is None
    with budget.holding_back(0, 100):
        assert budget.tokens_left() == 0 and budget.exceeded() == "max_tokens=100 reached"


def test_seconds_left_counts_down_to_zero():
    budget = Budget(max_seconds=60)
    assert 59 < budget.seconds_left() <= 60 and budget.exceeded() is None
    short = Budget(max_seconds=0.001)
    time.sleep(0.01)
    assert short.seconds_left() == 0.0 and short.exceeded() == "max_seconds=0.001 reached"


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    width: int = 8
    depth: int = 4

    def worst_case_calls(self) -> int:
        return self.width * self.depth


class ToyMethod:
    """A method that makes ``width`` chain-of-thought calls and keeps the last reply's stated answer; its fit
    halves both sizes and records the allowance it was given."""

    def __init__(self) -> None:
        self.allowances = []
        self.ran_with = []
        self.spec = MethodSpec("toy", "Toy", ToyConfig, self.run, fit=self.fit)

    async def run(self, context, config):
        self.ran_with.append(config)
        text = ""
        for _ in range(config.width):
            text = (await solver(context, 16).run(question=context.question)).texts[0]
        answer = "6" if "The answer is 6" in text else None
        return Outcome(answer, text)

    def fit(self, config, allowance):
        self.allowances.append(allowance)
        return dataclasses.replace(config, width=config.width // 2, depth=config.depth // 2)


def run_toy(method, reply="The answer is 6.", rules=(), config=ToyConfig(), **limits):
    backend = ScriptedBackend(list(rules), default=reply)
    context = RunContext(QUESTION, backend, Budget(**limits))
    prompt = backend.count_prompt_tokens(solver(context, MIN_CHAIN_TOKENS).request(question=QUESTION))
    with UsageLedger() as ledger:
        context.budget.ledger = ledger
        outcome = asyncio.run(run_within_budget(method.spec, context, config))
    return outcome, context.budget, ledger, prompt


def test_a_worst_case_that_fits_exactly_runs_as_configured():
    method = ToyMethod()
    outcome, budget, ledger, _ = run_toy(method, max_calls=32)  # 8 x 4 = 32
    assert method.ran_with == [ToyConfig()] and method.allowances == [] and budget.bound_by is None
    assert outcome.answer == "6" and ledger.calls == 8


def test_the_method_is_fitted_to_what_is_left_beside_the_reserve():
    method = ToyMethod()
    outcome, budget, ledger, prompt = run_toy(method, max_calls=20, max_tokens=5000)
    chain = prompt + MIN_CHAIN_TOKENS
    (allowance,) = method.allowances
    # the reserve: 2 calls (the chain, then its answer alone) and 2 chains' tokens plus the answer's
    assert (allowance.calls, allowance.tokens, allowance.prompt_tokens) == (
        18, 5000 - (2 * chain + ANSWER_TOKENS), prompt,
    )  # fmt: skip
    assert method.ran_with == [ToyConfig(4, 2)] and ledger.events["fitted_to_budget"] == 1
    assert budget.bound_by == "max_calls=20, max_tokens=5000: toy shrunk to fit (width 8->4, depth 4->2)"
    assert outcome.answer == "6"


def test_three_calls_hold_the_reserve_and_one_more_chain_and_two_do_not():
    fitted, two = ToyMethod(), ToyMethod()
    run_toy(fitted, max_calls=3)
    assert len(fitted.allowances) == 1
    outcome, budget, ledger, _ = run_toy(two, max_calls=2)
    assert two.allowances == [] and two.ran_with == [] and ledger.events["budget_one_chain"] == 1
    assert budget.bound_by == "max_calls=2: too small for toy beside a reserve chain; one chain of thought answered"
    assert outcome.answer == "6"


def test_the_token_threshold_for_the_reserve_and_one_more_chain():
    probe = ToyMethod()
    _, _, _, prompt = run_toy(probe, max_tokens=100_000)
    chain = prompt + MIN_CHAIN_TOKENS
    threshold = 3 * chain + ANSWER_TOKENS  # the reserve (2 chains and an answer) and one more chain
    exactly, below = ToyMethod(), ToyMethod()
    run_toy(exactly, max_tokens=threshold)
    assert len(exactly.allowances) == 1
    _, _, ledger, _ = run_toy(below, max_tokens=threshold - 1)
    assert below.allowances == [] and ledger.events["budget_one_chain"] == 1


def test_a_budget_below_one_chain_runs_nothing_and_returns_no_text():
    method = ToyMethod()
    outcome, budget, ledger, prompt = run_toy(method, max_tokens=20)
    assert (outcome.answer, outcome.reasoning) == (None, "") and ledger.calls == 0
    assert budget.bound_by == (
        f"max_tokens=20: too small for one chain of thought, which needs 1 call and about "
        f"{prompt + MIN_CHAIN_TOKENS} tokens ({prompt} prompt + {MIN_CHAIN_TOKENS} written)"
    )


def test_a_fitted_run_without_an_answer_spends_the_reserve_on_one_chain():
    method = ToyMethod()
    final = ScriptRule("only the final answer", ["7"])
    outcome, _, ledger, _ = run_toy(method, reply="I am not sure.", rules=[final], max_calls=10)
    # the toy (4 calls) states nothing; the reserve buys a chain and its answer asked alone
    assert ledger.events["budget_fallback_chain"] == 1 and ledger.calls == 4 + 2
    assert outcome.answer == "7"
