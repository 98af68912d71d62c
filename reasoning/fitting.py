"""Small budgets still buy an answer: a method shrinks to what the budget allows, and one chain of thought is kept
in reserve.

Under a token budget, or a call budget the method's worst case does not fit, :func:`run_within_budget`

1. counts what one chain of thought needs (one call, its prompt and :data:`MIN_CHAIN_TOKENS` written); a budget
   smaller than that runs nothing and says so (``stopped_by`` names what one chain needs);
2. sets aside a reserve for one chain and the answer asked for alone (:class:`~thoughtgraph.reasoning.cot`'s two
   calls); when the budget cannot hold the reserve and one more chain, the run is that chain of thought alone
   (event ``budget_one_chain``);
3. otherwise shrinks the method's config with its spec's ``fit`` (fewer trees, samples, candidates; shorter
   steps; event ``fitted_to_budget``), runs it with the reserve held back, and, when it ends without an answer,
   spends the reserve on one chain of thought (event ``budget_fallback_chain``).

Without such a budget the method runs as configured. Every reason a budget changed the run starts with the
limit (``max_calls=8: ...``) and is the solution's ``stopped_by``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from thoughtgraph.agents.runtime import BudgetExceeded
from thoughtgraph.backends import record_event
from thoughtgraph.reasoning.context import RunContext
from thoughtgraph.reasoning.cot import SPEC as COT
from thoughtgraph.reasoning.cot import CoTConfig, solver
from thoughtgraph.reasoning.outcome import Outcome, outcome_from_graph
from thoughtgraph.reasoning.spec import MethodSpec

MIN_CHAIN_TOKENS = 64
"""The fewest written tokens a chain of thought is given: below this a small model states no answer."""
ANSWER_TOKENS = 16


@dataclass(frozen=True)
class Allowance:
    """What a method may spend once the reserve is set aside, and the size of one prompt (the chain's)."""

    calls: int | None
    tokens: int | None
    prompt_tokens: int

    def branches(self, wanted: int, *, calls_each: int = 0, tokens_each: int = 0, fixed_calls: int = 0) -> int:
        """How many of ``wanted`` parallel branches fit, when each needs ``calls_each`` calls and ``tokens_each``
        tokens beside ``fixed_calls`` shared ones: at least one."""
        fitting = wanted
        if self.calls is not None and calls_each:
            fitting = min(fitting, (self.calls - fixed_calls) // calls_each)
        if self.tokens is not None and tokens_each:
            fitting = min(fitting, self.tokens // tokens_each)
        return max(1, fitting)


def shrunk(config: Any, **changes: Any) -> Any:
    """``config`` with ``changes`` that make it smaller (never larger)."""
    smaller = {name: value for name, value in changes.items() if value < getattr(config, name)}
    return dataclasses.replace(config, **smaller) if smaller else config


async def run_within_budget(spec: MethodSpec, context: RunContext, config: Any) -> Outcome:
    budget = context.budget
    worst_calls = config.worst_case_calls() if hasattr(config, "worst_case_calls") else None
    calls_fit = budget.max_calls is None or (worst_calls is not None and worst_calls <= budget.max_calls)
    if budget.max_tokens is None and calls_fit:
        return await spec.run(context, config)
    limits = ", ".join(
        f"{name}={value}"
        for name, value in (("max_calls", budget.max_calls), ("max_tokens", budget.max_tokens))
        if value
    )
    prompt = context.backend.count_prompt_tokens(solver(context, MIN_CHAIN_TOKENS).request(question=context.question))
    chain_tokens = prompt + MIN_CHAIN_TOKENS
    reserve_calls, reserve_tokens = 2, 2 * chain_tokens + ANSWER_TOKENS  # the chain, then its answer alone
    if not _affords(budget, 1, chain_tokens):
        budget.bind(
            f"{limits}: too small for one chain of thought, which needs 1 call and about {chain_tokens} tokens "
            f"({prompt} prompt + {MIN_CHAIN_TOKENS} written)"
        )
        return Outcome(None, "")
    if spec.name == COT.name:
        return await spec.run(context, config)
    if not _affords(budget, reserve_calls + 1, reserve_tokens + chain_tokens):
        record_event("budget_one_chain")
        budget.bind(f"{limits}: too small for {spec.name} beside a reserve chain; one chain of thought answered")
        return await _one_chain(context)
    allowance = Allowance(
        calls=None if budget.max_calls is None else budget.max_calls - reserve_calls,
        tokens=None if budget.max_tokens is None else budget.max_tokens - reserve_tokens,
        prompt_tokens=prompt,
    )
    fitted = spec.fit(config, allowance) if spec.fit is not None else config
    if fitted != config:
        record_event("fitted_to_budget")
        changes = ", ".join(
            f"{f.name} {getattr(config, f.name)}->{getattr(fitted, f.name)}"
            for f in dataclasses.fields(config)
            if getattr(config, f.name) != getattr(fitted, f.name)
        )
        budget.bind(f"{limits}: {spec.name} shrunk to fit ({changes})")
    with budget.holding_back(reserve_calls, reserve_tokens):
        try:
            outcome = await spec.run(context, fitted)
        except BudgetExceeded:
            outcome = outcome_from_graph(context.graph)
    if outcome.answer is not None:
        return outcome
    record_event("budget_fallback_chain")
    chain = await _one_chain(context)
    return chain if chain.answer is not None else outcome


async def _one_chain(context: RunContext) -> Outcome:
    """A chain of thought with whatever the budget has left (its tokens are clamped to that)."""
    try:
        return await COT.run(context, CoTConfig())
    except BudgetExceeded:
        return outcome_from_graph(context.graph)


def _affords(budget: Any, calls: int, tokens: int) -> bool:
    calls_left, tokens_left = budget.calls_left(), budget.tokens_left()
    return (calls_left is None or calls_left >= calls) and (tokens_left is None or tokens_left >= tokens)
