"""Self-consistency: n sampled chains in one request, majority vote over their answers."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph

from thoughtgraph.backends import record_event
from thoughtgraph.reasoning.answers import extract_answer, stated_answer
from thoughtgraph.reasoning.context import RunContext
from thoughtgraph.reasoning.cot import check_chain_stop, count_repeats, solver
from thoughtgraph.reasoning.fitting import MIN_CHAIN_TOKENS, Allowance, shrunk
from thoughtgraph.reasoning.options import sized
from thoughtgraph.reasoning.outcome import Outcome
from thoughtgraph.reasoning.spec import MethodSpec
from thoughtgraph.reasoning.steps import majority_vote


@dataclass(frozen=True)
class SelfConsistencyConfig:
    samples: int = sized(5, "width")
    temperature: float = 0.7
    top_p: float = 0.95
    chain_tokens: int = sized(512, "tokens")
    chain_stop: tuple[str, ...] = sized((), "count")
    """Text that ends a chain where it first appears (the dataset's stop sequences; see ``CoTConfig``)."""

    def __post_init__(self) -> None:
        check_chain_stop(type(self).__name__, self.chain_stop)
        if self.samples < 1 or self.chain_tokens < 1:
            raise ValueError("samples and chain_tokens must be >= 1")

    def worst_case_calls(self) -> int:
        """All chains come from one request."""
        return 1


def fit_samples(config: SelfConsistencyConfig, allowance: Allowance) -> SelfConsistencyConfig:
    """Fewer samples when the tokens cannot give each a useful chain (one request holds them all)."""
    each = allowance.prompt_tokens // config.samples + min(config.chain_tokens, 2 * MIN_CHAIN_TOKENS)
    return shrunk(config, samples=allowance.branches(config.samples, tokens_each=each))


async def sample_chains(context: RunContext, config: SelfConsistencyConfig) -> list[int]:
    """Sample whole chains in one request (the engine batches them); each becomes a node under the root."""
    agent = solver(context, config.chain_tokens, stop=config.chain_stop)
    context.used(agent)
    reply = await agent.run(
        question=context.question,
        n=config.samples,
        temperature=config.temperature,
        top_p=config.top_p,
        seed=context.seed,
    )
    count_repeats(reply)
    nodes = []
    for chain in reply.texts:
        answer = stated_answer(chain)
        if answer is None:
            record_event("parse_failure")
            answer = extract_answer(chain)
        nodes.append(context.add_thought(0, chain, answer=answer).id)
    return nodes


class SampledState(TypedDict, total=False):
    nodes: Annotated[list[int], operator.add]


async def self_consistency(context: RunContext, config: SelfConsistencyConfig) -> Outcome:
    async def sample(state: SampledState) -> SampledState:
        return {"nodes": await sample_chains(context, config)}

    builder = StateGraph(SampledState)
    builder.add_node("sample", sample)
    builder.add_edge(START, "sample")
    builder.add_edge("sample", END)
    state = await builder.compile().ainvoke({"nodes": []})
    graph = context.graph
    answer, votes = majority_vote([graph.nodes[i].answer or "" for i in state["nodes"]])
    chosen = next((i for i in state["nodes"] if graph.nodes[i].answer == answer), state["nodes"][0])
    graph.chosen = [chosen]
    return Outcome(answer, graph.nodes[chosen].text, votes)


SPEC = MethodSpec(
    "sc",
    "Self-consistency",
    SelfConsistencyConfig,
    self_consistency,
    tiny={"samples": 2, "chain_tokens": 64},
    fit=fit_samples,
)
