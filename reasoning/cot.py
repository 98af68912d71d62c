"""Chain of thought: one greedy chain, then the answer it states.

Small models often do not state their answer in the asked-for form. When the chain has no
answer marker and the backend can constrain output, one more short call asks for the final
answer under a constraint (a number, for numeric tasks), so the answer is always parseable;
the miss is counted as a ``parse_failure`` event in the usage ledger either way.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from backends import Backend, Constraint, Request, UsageLedger, record_event
from prompts import load_prompt
from reasoning.answers import NUMBER_PATTERN, extract_answer
from reasoning.solution import Solution

_EXPLICIT_MARKER = re.compile(r"answer\s*(is|:)|\\boxed\{|####", re.IGNORECASE)


@dataclass(frozen=True)
class CoTConfig:
    max_tokens: int = 512
    temperature: float = 0.0
    answer_pattern: str | None = NUMBER_PATTERN
    """Regex the final answer must match when it is asked for separately; None for free text."""
    answer_max_tokens: int = 16

    def __post_init__(self) -> None:
        if self.max_tokens <= 0 or self.answer_max_tokens <= 0:
            raise ValueError("CoTConfig: max_tokens and answer_max_tokens must be positive")
        if not 0.0 <= self.temperature <= 5.0:
            raise ValueError(f"CoTConfig: temperature must be in [0, 5], got {self.temperature}")


async def chain_of_thought(question: str, backend: Backend, config: CoTConfig, *, seed: int = 0) -> Solution:
    solve_prompt = load_prompt("cot/solve")
    turns = solve_prompt.render(question=question)
    with UsageLedger() as ledger:
        chain = await backend.generate_one(
            Request.chat(*turns, max_tokens=config.max_tokens, temperature=config.temperature, seed=seed)
        )
        reasoning = chain.text.strip()
        answer = extract_answer(reasoning) if _EXPLICIT_MARKER.search(reasoning) else None
        versions = {solve_prompt.name: solve_prompt.version}
        if answer is None:
            record_event("parse_failure")
            answer, final_prompt = await _ask_final_answer(turns, reasoning, backend, config, seed)
            versions[final_prompt.name] = final_prompt.version
    return Solution(
        answer=answer,
        reasoning=reasoning,
        method="cot",
        candidates=Counter([answer] if answer else []),
        usage=ledger.to_dict(),
        prompt_versions=versions,
    )


async def _ask_final_answer(turns, reasoning, backend, config, seed):
    final_prompt = load_prompt("cot/final_answer")
    can_constrain = config.answer_pattern and "regex" in backend.capabilities.constraints
    request = Request.chat(
        *turns,
        ("assistant", reasoning or "(no reasoning)"),
        *final_prompt.render(),
        max_tokens=config.answer_max_tokens,
        seed=seed,
        constraint=Constraint.regex(config.answer_pattern) if can_constrain else None,
    )
    reply = (await backend.generate_one(request)).text.strip()
    answer = reply if can_constrain else extract_answer(reply) or extract_answer(reasoning)
    return (answer.replace(",", "") if answer else None), final_prompt
