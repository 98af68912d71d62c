"""Chain of thought: one greedy chain, then the answer it states (a LangGraph of two nodes).

Small models often do not state their answer in the asked-for form. When the chain has no answer
marker, a second node asks for the final answer alone, under a constraint (a number, for numeric
tasks) where the backend can constrain; the miss is counted as a ``parse_failure`` either way.
A chain ends early when it starts copying itself: before the first sentence of at least
``stop_repeated_sentence`` characters (``REPEAT_FLOOR``, 40) that repeats one it already wrote word for word (a
step number aside), counted as ``chain_repeated`` (in ``sc`` and ``bon`` too); then the final answer is asked for
as above. Greedy chains of small models loop this way: on the first 12 GSM8K problems, 14% of SmolLM2's chain
text came after its first repeat (none of it a stated answer), and on the first 50 the stop cut 9-11 chains.
Engines that decode token by token do not generate the tokens after the repeat; a server reply is cut afterwards.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TypedDict

from langgraph.graph import END, START, StateGraph

from thoughtgraph.agents.runtime import Agent, BudgetExceeded, Reply
from thoughtgraph.backends import Constraint, record_event
from thoughtgraph.reasoning.answers import ANSWER_STATED_PATTERN, NUMBER_PATTERN, extract_answer, stated_answer
from thoughtgraph.reasoning.context import RunContext
from thoughtgraph.reasoning.options import server_setting, sized
from thoughtgraph.reasoning.outcome import Outcome
from thoughtgraph.reasoning.spec import MethodSpec

REPEAT_FLOOR = 40
"""Characters a sentence needs before its word-for-word repeat ends a chain (``Request.stop_repeated_sentence``)."""


def check_chain_stop(owner: str, stops: tuple[str, ...]) -> None:
    """An empty stop string would end every chain before its first token: refused, naming the option."""
    if any(not stop for stop in stops):
        raise ValueError(f"{owner}: chain_stop entries must be non-empty text, got {list(stops)!r}")


@dataclass(frozen=True)
class CoTConfig:
    chain_tokens: int = sized(512, "tokens")
    temperature: float = 0.0
    answer_pattern: str | None = server_setting(NUMBER_PATTERN)
    """Regex the final answer must match when it is asked for separately; None for free text."""
    answer_tokens: int = sized(16, "tokens")
    stop_repeated_sentence: int = server_setting(REPEAT_FLOOR)
    """The chain ends before a sentence of at least this many characters that it has already written; 0: off."""
    chain_stop: tuple[str, ...] = sized((), "count")
    """Text that ends the chain where it first appears (not kept): the dataset's stop sequences when ``evals``
    runs it (GSM8K "Question:", as lm-evaluation-harness's ``until``). A server stops there itself."""

    def __post_init__(self) -> None:
        check_chain_stop("CoTConfig", self.chain_stop)
        if self.stop_repeated_sentence < 0:
            raise ValueError(f"CoTConfig: stop_repeated_sentence must be >= 0, got {self.stop_repeated_sentence}")
        if self.chain_tokens <= 0 or self.answer_tokens <= 0:
            raise ValueError("CoTConfig: chain_tokens and answer_tokens must be positive")
        if not 0.0 <= self.temperature <= 5.0:
            raise ValueError(f"CoTConfig: temperature must be in [0, 5], got {self.temperature}")

    def worst_case_calls(self) -> int:
        """The chain, and the separate final-answer request when the chain states none."""
        return 2


class CoTState(TypedDict, total=False):
    chain: str
    answer: str | None
    node: int


def solver(
    context: RunContext, max_tokens: int, stop_repeated_sentence: int = REPEAT_FLOOR, stop: tuple[str, ...] = ()
) -> Agent[str]:
    """Writes a whole chain of thought and stops once it has stated its final answer, before it repeats a
    sentence of at least ``stop_repeated_sentence`` characters, or at a ``stop`` string (cot, sc, bon)."""
    return Agent(
        "cot/solve", context.backend, context.budget, max_tokens=max_tokens, stop_pattern=ANSWER_STATED_PATTERN,
        stop_repeated_sentence=stop_repeated_sentence, stop=stop,
    )  # fmt: skip


def count_repeats(reply: Reply) -> None:
    """Record ``chain_repeated`` for each chain of ``reply`` that the repeat stop ended (cot, sc, bon)."""
    for choice in reply.result.choices:
        if choice.finish_reason == "repetition":
            record_event("chain_repeated")


async def answer_after(context: RunContext, config: CoTConfig, chain: str) -> str | None:
    """Ask for the final answer alone after ``chain``, constrained where the backend can."""
    final = Agent(
        "cot/final_answer",
        context.backend,
        context.budget,
        max_tokens=config.answer_tokens,
        constraint=Constraint.regex(config.answer_pattern) if config.answer_pattern else None,
    )
    asked = solver(context, config.chain_tokens).prompt.render(question=context.question)
    history = (*asked, ("assistant", chain or "-"))
    context.used(final)
    constrained = final.constraint is not None and final.constraint.kind in context.backend.capabilities.constraints
    reply = (await final.run(history=history, seed=context.seed)).texts[0]
    answer = reply if constrained else extract_answer(reply) or extract_answer(chain)
    return answer.replace(",", "") if answer else None


async def chain_of_thought(context: RunContext, config: CoTConfig) -> Outcome:
    agent = solver(context, config.chain_tokens, config.stop_repeated_sentence, config.chain_stop)
    context.used(agent)

    async def think(state: CoTState) -> CoTState:
        reply = await agent.run(question=context.question, temperature=config.temperature, seed=context.seed)
        chain = reply.texts[0]
        count_repeats(reply)
        answer = stated_answer(chain)
        node = context.add_thought(0, chain, answer=answer)
        return {"chain": chain, "answer": answer, "node": node.id}

    async def ask_answer(state: CoTState) -> CoTState:
        record_event("parse_failure")  # the chain stated no answer in the asked-for form
        record_event("answer_asked")  # a second, short, constrained call (counted per problem by evals)
        try:
            answer = await answer_after(context, config, state["chain"])
        except BudgetExceeded:  # no budget left to ask: the chain's last answer-like text, if any
            record_event("answer_read_from_chain")
            answer = extract_answer(state["chain"])
        context.graph.nodes[state["node"]].answer = answer
        return {"answer": answer}

    builder = StateGraph(CoTState)
    builder.add_node("think", think)
    builder.add_node("ask_answer", ask_answer)
    builder.add_edge(START, "think")
    builder.add_conditional_edges("think", lambda s: END if s["answer"] else "ask_answer", ["ask_answer", END])
    builder.add_edge("ask_answer", END)
    state = await builder.compile().ainvoke({})
    context.graph.chosen = [state["node"]]
    answer = state["answer"]
    return Outcome(answer, state["chain"], Counter([answer] if answer else []))


SPEC = MethodSpec("cot", "Chain of thought", CoTConfig, chain_of_thought, tiny={"chain_tokens": 64})
