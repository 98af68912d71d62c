"""Thought Rollback (Chen et al., ICML 2024).

One thought graph grown depth first, one step at a time. Before growing a node that still has
rollback budget, the analyst reviews the path so far and names bad steps. The bad steps are tried
in the order named; the first whose rollback the limits allow wins: a rollback edge goes from the
current node back to the step before it (the question for step 1), that node becomes growable
again, and the analysis rides on the rollback edge as an experience. Only the branch regrown from
that rollback inherits it (the next child of the target carries it, and everything below that
child sees it in the thinker prompt); the target itself is grown at once, not analysed again.
The thought that rolled back stays growable, as in the reference (a node is growable until it has its
children): once the regrown branch ends, it is grown again, now past its rollback limit, so the rollback
adds a new thought from it too. Sinks are analysed like any thought: finished solutions and chains that reach
``max_depth`` without an answer (the depth counts the root, as the reference's ``max_length``). The answer is a
vote over all solutions.

Limits, with the reference code's meanings (iQua/llmpebase ``TR_structure.py``) and defaults:

- ``max_outgoing`` (1): rollbacks leaving one thought;
- ``max_incoming`` (2): rollbacks arriving at one thought;
- ``max_into_target_from_chain`` (2): rollbacks into one target that leave thoughts of the chain
  between that target and the current thought;
- ``max_chain_rollbacks`` (3): rollbacks leaving thoughts of the current chain (root to thought).

Unlike the reference, every limit is a strict bound (the reference compares ``<=`` for three of them,
allowing one more), the into-target limit is enforced (the reference compared ids of different
types, so it never held), and step indices from the model are validated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypedDict

from langgraph.graph import END, START, StateGraph

from thoughtgraph.agents.runtime import derived_seed
from thoughtgraph.backends import record_event
from thoughtgraph.reasoning.answers import stated_answer
from thoughtgraph.reasoning.context import RunContext
from thoughtgraph.reasoning.graph import ROOT, Experience, ThoughtNode
from thoughtgraph.reasoning.options import sized
from thoughtgraph.reasoning.outcome import Outcome
from thoughtgraph.reasoning.spec import MethodSpec
from thoughtgraph.reasoning.steps import analyst, majority_vote, thinker, weighted_vote

LIMITS = ("max_outgoing", "max_incoming", "max_into_target_from_chain", "max_chain_rollbacks")


@dataclass(frozen=True)
class ThoughtRollbackConfig:
    temperature: float = 0.7
    step_tokens: int = sized(1000, "tokens")
    max_depth: int = sized(20, "depth")
    max_solutions: int = sized(8, "count")
    max_sinks: int = sized(10, "count")
    max_outgoing: int = sized(1, "count")
    """Rollbacks that may leave one thought."""
    max_incoming: int = sized(2, "count")
    """Rollbacks that may arrive at one thought."""
    max_into_target_from_chain: int = sized(2, "count")
    """Rollbacks into one target from the thoughts of the chain between that target and the current thought."""
    max_chain_rollbacks: int = sized(3, "count")
    """Rollbacks that may leave the thoughts of one chain (root to the current thought)."""
    max_steps: int = sized(200, "depth")
    """A hard bound on generated steps, whatever the analyst says."""
    vote: Literal["majority", "weighted"] = "majority"
    """weighted: each solution's vote counts 1 / (1 + rollbacks on its chain)."""

    def __post_init__(self) -> None:
        for name in ("step_tokens", "max_depth", "max_solutions", "max_sinks", "max_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"ThoughtRollbackConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in LIMITS:
            if getattr(self, name) < 0:
                raise ValueError(f"ThoughtRollbackConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.vote not in ("majority", "weighted"):
            raise ValueError(f"ThoughtRollbackConfig.vote must be majority or weighted, got {self.vote!r}")

    def worst_case_calls(self) -> int:
        """Each written step: one writer call and the analysis before it; each thought: at most one analysis
        that rolls back instead of writing; each sink (a solution or a chain at the depth limit): one more
        analysis."""
        return 3 * self.max_steps + self.max_solutions + self.max_sinks


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
        """Whether ``node`` may still start a rollback (worth an analysis call)."""
        chain = {ROOT, *self.graph.path(node)}
        return (
            self._count(sources={node}) < self.config.max_outgoing
            and self._count(sources=chain) < self.config.max_chain_rollbacks
        )

    def allows(self, node: int, target: int) -> bool:
        """Whether a rollback from ``node`` to ``target`` keeps every limit."""
        path = [ROOT, *self.graph.path(node)]
        between = set(path[path.index(target) :]) if target in path else {node}
        return (
            self.can_leave(node)
            and self._count(targets={target}) < self.config.max_incoming
            and self._count(sources=between, targets={target}) < self.config.max_into_target_from_chain
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

    awaiting: dict[int, list[int]] = {}
    """Rolled-back-to nodes and the experiences their next child inherits."""
    analyses: dict[int, int] = {}

    def inherited(node: int) -> list[str]:
        """Experiences that rode on the rollbacks whose regrown branches lead to ``node``."""
        indices = [i for n in graph.path(node) for i in graph.nodes[n].metadata.get("experiences", [])]
        return [graph.experiences[i].render() for i in indices]

    async def try_rollback(node: int) -> int | None:
        """Analyse the path to ``node``; roll back for the first named bad step the limits allow."""
        path = graph.path(node)
        analyses[node] = analyses.get(node, 0) + 1
        analysis = (
            await chain_analyst.run(
                question=context.question,
                steps=[graph.nodes[i].text for i in path],
                seed=derived_seed(context.seed, "tr-analyst", *graph.position(node), analyses[node]),
            )
        ).parsed[0]
        valid = [k for k in dict.fromkeys(analysis.bad_steps) if 1 <= k <= len(path)]
        if len(valid) < len(analysis.bad_steps):
            record_event("invalid_step_index", len(analysis.bad_steps) - len(valid))
        for bad_step in valid:
            target = path[bad_step - 2] if bad_step >= 2 else ROOT
            if not limits.allows(node, target):
                record_event("rollback_refused_by_limits")
                continue
            steps = [graph.nodes[i].text for i in path]
            graph.experiences.append(Experience(steps, analysis.text, valid, {"from": node}))
            experience = len(graph.experiences) - 1
            graph.add_rollback(node, target, bad_step=bad_step, experience=experience)
            awaiting.setdefault(target, []).append(experience)
            return target
        return None

    async def step(state: TRState) -> TRState:
        growable, solutions, sinks = list(state["growable"]), list(state["solutions"]), state["sinks"]
        node = growable.pop()  # depth first: the most recent growable node
        rolled_back_to = awaiting.pop(node, [])
        if node != ROOT and not rolled_back_to and limits.can_leave(node):
            target = await try_rollback(node)
            if target is not None:  # the target grows next; the node stays growable below it
                return {"growable": [*growable, node, target], "steps": state["steps"]}
        child_index = len(graph.children(node))
        text = (
            await step_writer.run(
                question=context.question,
                steps=graph.steps(node) if node else [],
                experiences=[*inherited(node), *(graph.experiences[i].render() for i in rolled_back_to)],
                temperature=config.temperature,
                seed=derived_seed(context.seed, "tr", *graph.position(node), child_index),
            )
        ).texts[0]
        child: ThoughtNode = context.add_thought(node, text, answer=stated_answer(text))
        if rolled_back_to:
            child.metadata["experiences"] = rolled_back_to
        if child.is_final:
            solutions.append(child.id)
        if child.is_final or child.depth + 1 >= config.max_depth:  # a sink; the root counts in the depth
            sinks += 1
            if limits.can_leave(child.id):
                target = await try_rollback(child.id)
                if target is not None:
                    growable.append(target)
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


SPEC = MethodSpec(
    "tr",
    "Thought Rollback",
    ThoughtRollbackConfig,
    thought_rollback,
    tiny={"max_steps": 3, "max_solutions": 1, "step_tokens": 32},
)
