"""Best-of-N: n sampled chains, each scored by the judge (concurrently, one Send each), the best kept."""

from __future__ import annotations

import operator
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from thoughtgraph.reasoning.context import RunContext
from thoughtgraph.reasoning.fitting import MIN_CHAIN_TOKENS, Allowance, shrunk
from thoughtgraph.reasoning.options import sized
from thoughtgraph.reasoning.outcome import Outcome
from thoughtgraph.reasoning.sc import SelfConsistencyConfig, sample_chains
from thoughtgraph.reasoning.spec import MethodSpec
from thoughtgraph.reasoning.steps import judge


@dataclass(frozen=True)
class BestOfNConfig(SelfConsistencyConfig):
    """The same sampling settings as self-consistency; only the choice among the chains differs."""

    samples: int = sized(4, "width")

    def worst_case_calls(self) -> int:
        """One request for the chains, one judge call per chain."""
        return 1 + self.samples


def fit_samples_and_judges(config: BestOfNConfig, allowance: Allowance) -> BestOfNConfig:
    """Fewer samples when the calls cannot judge them all or the tokens cannot give each a useful chain (its
    share of the prompt, the chain, and the judge reading both)."""
    chain = min(config.chain_tokens, 2 * MIN_CHAIN_TOKENS)
    each = 2 * (allowance.prompt_tokens + chain)
    return shrunk(config, samples=allowance.branches(config.samples, calls_each=1, fixed_calls=1, tokens_each=each))


class BestOfNState(TypedDict, total=False):
    nodes: list[int]
    scores: Annotated[list[tuple[int, float]], operator.add]


async def best_of_n(context: RunContext, config: BestOfNConfig) -> Outcome:
    scorer = judge(context)
    context.used(scorer)

    async def sample(state: BestOfNState) -> BestOfNState:
        nodes = await sample_chains(context, config)
        return {"nodes": nodes}

    async def score(task: dict) -> BestOfNState:
        node = context.graph.nodes[task["node"]]
        node.score = (await scorer.run(question=context.question, steps=[node.text], seed=context.seed)).parsed[0]
        return {"scores": [(node.id, node.score)]}

    builder = StateGraph(BestOfNState)
    builder.add_node("sample", sample)
    builder.add_node("score", score)
    builder.add_edge(START, "sample")
    builder.add_conditional_edges("sample", lambda s: [Send("score", {"node": n}) for n in s["nodes"]], ["score"])
    builder.add_edge("score", END)
    state = await builder.compile().ainvoke({"scores": []})
    best = max(state["scores"], key=lambda pair: (pair[1], -pair[0]))[0]
    context.graph.chosen = [best]
    node = context.graph.nodes[best]
    return Outcome(node.answer, node.text, Counter([node.answer] if node.answer else []))


SPEC = MethodSpec(
    "bon", "Best-of-N", BestOfNConfig, best_of_n, tiny={"samples": 2, "chain_tokens": 64}, fit=fit_samples_and_judges
)
