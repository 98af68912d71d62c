"""Thought Rollback (Chen et al., ICML 2024).

One thought graph grown depth first, one step at a time. Before growing a node that still has
rollback budget, the analyst reviews the path so far and names bad steps. For a bad step k the
method adds a rollback edge from the current node back to step k-1 (the question for k = 1),
makes that node growable again and attaches the analysis to it as an experience; everything grown
below it inherits the experiences on its path in the thinker prompt. Finished solutions are
analysed too. The answer is a vote over all solutions.

Every limit is enforced (the reference code never enforced the per-chain incoming limit) and step
indices from the model are validated (the reference used them unchecked):

- ``max_outgoing``: rollbacks leaving one node;
- ``max_incoming``: rollbacks arriving at one node;
- ``max_from_chain``: rollbacks leaving nodes of one chain (root-to-node path);
- ``max_into_chain``: rollbacks arriving at nodes of one chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypedDict

from langgraph.graph import END, START, StateGraph

from agents.runtime import derived_seed
from backends import record_event
from reasoning.context import RunContext
from reasoning.graph import ROOT, Experience, ThoughtNode
from reasoning.outcome import Outcome
from reasoning.steps import analyst, final_answer, majority_vote, thinker, weighted_vote


@dataclass(frozen=True)
class ThoughtRollbackConfig:
    temperature: float = 0.7
    step_tokens: int = 1000
    max_depth: int = 20
    max_solutions: int = 8
    max_sinks: int = 10
    max_outgoing: int = 1
    max_incoming: int = 2
    max_from_chain: int = 2
    max_into_chain: int = 3
    max_steps: int = 200
    """A hard bound on generated steps, whatever the analyst says."""
    vote: Literal["majority", "weighted"] = "majority"
    """weighted: each solution's vote counts 1 / (1 + rollbacks on its chain)."""

    def __post_init__(self) -> None:
        for name in ("step_tokens", "max_depth", "max_solutions", "max_sinks", "max_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"ThoughtRollbackConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_outgoing", "max_incoming", "max_from_chain", "max_into_chain"):
            if getattr(self, name) < 0:
                raise ValueError(f"ThoughtRollbackConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.vote not in ("majority", "weighted"):
            raise ValueError(f"ThoughtRollbackConfig.vote must be majority or weighted, got {self.vote!r}")


class RollbackLimits:
    def __init__(self, context: RunContext, config: ThoughtRollbackConfig) -> None:
        self.graph, self.config = context.graph, config

    def _count(self, *, sources: set[int] | None = None, targets: set[int] | None = None) -> int:
        return sum(
            1
            for e in self.graph.rollbacks()
            if (sources is None or e.source in sources) and (targets is None or e.target in targets)
        )

    def can_leave(self, node: int) -> bool:
        chain = {ROOT, *self.graph.path(node)}
        return (
            self._count(sources={node}) < self.config.max_outgoing
            and self._count(sources=chain) < self.config.max_from_chain
        )

    def allows(self, node: int, target: int) -> bool:
        chain = {ROOT, *self.graph.path(node)}
        return (
            self.can_leave(node)
            and self._count(targets={target}) < self.config.max_incoming
            and self._count(targets=chain) < self.config.max_into_chain
        )


class TRState(TypedDict, total=False):
    growable: list[int]
    solutions: list[int]
    sinks: int
    steps: int


async def thought_rollback(context: RunContext, config: ThoughtRollbackConfig) -> Outcome:
    graph = context.graph
    step_writer, chain_analyst = thinker(context, max_tokens=config.step_tokens), analyst(context)
    context.used(step_writer, chain_analyst)
    limits = RollbackLimits(context, config)

    def inherited(node: int) -> list[str]:
        """Experiences attached to the question or to any node on the path to ``node``."""
        indices = [i for n in (ROOT, *graph.path(node)) for i in graph.nodes[n].metadata.get("experiences", [])]
        return [graph.experiences[i].render() for i in indices]

    async def try_rollback(node: int) -> int | None:
        """Analyse the path to ``node``; add a rollback if a valid bad step is named and limits allow."""
        path = graph.path(node)
        analysis = (
            await chain_analyst.run(
                question=context.question,
                steps=[graph.nodes[i].text for i in path],
                seed=derived_seed(context.seed, "tr-analyst", node),
            )
        ).parsed[0]
        valid = [k for k in analysis.bad_steps if 1 <= k <= len(path)]
        if len(valid) < len(analysis.bad_steps):
            record_event("invalid_step_index", len(analysis.bad_steps) - len(valid))
        if not valid:
            return None
        target = path[min(valid) - 2] if min(valid) >= 2 else ROOT
        if not limits.allows(node, target):
            record_event("rollback_refused_by_limits")
            return None
        graph.add_rollback(node, target, bad_step=min(valid))
        graph.experiences.append(Experience([graph.nodes[i].text for i in path], analysis.text, valid, {"from": node}))
        graph.nodes[target].metadata.setdefault("experiences", []).append(len(graph.experiences) - 1)
        return target

    async def step(state: TRState) -> TRState:
        growable, solutions, sinks = list(state["growable"]), list(state["solutions"]), state["sinks"]
        node = growable.pop()  # depth first: the most recent growable node
        if node != ROOT and limits.can_leave(node):
            target = await try_rollback(node)
            if target is not None:
                return {"growable": [*growable, target], "steps": state["steps"]}
        text = (
            await step_writer.run(
                question=context.question,
                steps=graph.steps(node) if node else [],
                experiences=inherited(node),
                temperature=config.temperature,
                seed=derived_seed(context.seed, "tr", state["steps"]),
            )
        ).texts[0]
        child: ThoughtNode = context.add_thought(node, text, answer=final_answer(text))
        if child.is_final:
            solutions.append(child.id)
            sinks += 1
            if limits.can_leave(child.id):
                target = await try_rollback(child.id)
                if target is not None:
                    growable.append(target)
        elif child.depth >= config.max_depth:
            sinks += 1
        else:
            growable.append(child.id)
        return {"growable": growable, "solutions": solutions, "sinks": sinks, "steps": state["steps"] + 1}

    def route(state: TRState) -> str:
        finished = (
            not state["growable"]
            or len(state["solutions"]) >= config.max_solutions
            or state["sinks"] >= config.max_sinks
            or state["steps"] >= config.max_steps
        )
        return END if finished else "step"

    builder = StateGraph(TRState)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", route, ["step", END])
    limit = 4 * (config.max_steps + 1)
    state = await builder.compile().ainvoke(
        {"growable": [ROOT], "solutions": [], "sinks": 0, "steps": 0}, {"recursion_limit": limit}
    )
    solutions = [graph.nodes[i] for i in state["solutions"]]
    if config.vote == "weighted":
        answer, votes = weighted_vote(
            [
                (n.answer or "", 1 / (1 + sum(1 for e in graph.rollbacks() if e.source in graph.path(n.id))))
                for n in solutions
            ]
        )
    else:
        answer, votes = majority_vote([n.answer or "" for n in solutions])
    chosen = next((n for n in solutions if n.answer == answer), None)
    graph.chosen = graph.path(chosen.id) if chosen else []
    return Outcome(answer, "\n".join(graph.steps(chosen.id)) if chosen else "", votes)
