"""Boosting of Thoughts (Chen et al., ICLR 2024).

Each iteration grows M heterogeneous thought trees concurrently (one ``Send`` per tree; each tree
draws its growth policy, temperature and top_p from pools), scores every step with the judge,
aggregates the trees' chains into one chain (best-first or greedy), asks the analyst for an
error analysis of that chain, and adds (chain, analysis) to the experience that every thinker
prompt of the next iteration carries. It stops early when the analysis finds no error.

Growth after the reference (iQua/llmpebase ``trees.py``): BFS takes the oldest open node, leaf-wise the
best-scored open node on the deepest level (both as the reference), DFS the newest open node (the
reference takes the first growable node in preorder, so it descends into a node's first child where we
descend into its last; both go depth first); a tree grows until it has
``max_sinks`` sinks (final answers, or nodes whose path from the root, the root counted as in the reference's
``max_length``, has ``max_depth`` nodes) or nothing is open. The two children
of a node are distinct thoughts: duplicates (after whitespace normalisation) are dropped and the
missing children asked for again, up to ``distinct_retries`` times. Aggregation defaults to
best-first, as in the reference configs; greedy is an option. Chains are root-to-sink paths, as the reference's
solution extractor takes them; a tree stopped before it has a sink (a budget, ``max_expansions``) offers its open
nodes' chains only when no tree of the iteration has a sink, so a partial chain never beats a finished one.

Heterogeneity as the reference draws it: each tree's growth policy once per run (the reference builds its trees
once), its temperature and top_p afresh each iteration. Early stop within an iteration as the reference's
``stop_via_evaluation``: once a tree holds a final answer whose every step the judge scored above
``confident_score`` (0.9), the other trees of that iteration stop growing at their next expansion (requests in
flight finish), and the iteration goes on to aggregation and analysis; the analysis decides whether another
iteration runs.

Unlike the reference code, best-first aggregation keeps the chain with the largest score sum over
all trees (the reference never updated its running best), greedy aggregation picks the best step
per step index across chains (the reference indexed chains as nodes), and the judge and analyst
use their own prompts, not the generator's system prompt.

Deviations: the reference's leaf-wise tree stops at its first final solution; ours grows to
``max_sinks`` like the other policies. ``max_expansions`` (default None, no cap) is ours, a cost
bound the paper does not have. An analysis that cannot be read at all is counted as a parse failure
and the iterations go on (it is neither "no error" nor an error report).
"""

from __future__ import annotations

import asyncio
import operator
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from thoughtgraph.agents.runtime import derived_seed, rng
from thoughtgraph.backends import record_event
from thoughtgraph.reasoning.answers import stated_answer
from thoughtgraph.reasoning.context import RunContext
from thoughtgraph.reasoning.fitting import MIN_CHAIN_TOKENS, Allowance, shrunk
from thoughtgraph.reasoning.graph import ROOT, Experience, ThoughtGraph, ThoughtNode
from thoughtgraph.reasoning.options import sized
from thoughtgraph.reasoning.outcome import Outcome
from thoughtgraph.reasoning.spec import MethodSpec, dataset_presets
from thoughtgraph.reasoning.steps import analyst, judge, majority_vote, thinker

Policy = Literal["dfs", "bfs", "leaf_best"]
POOL = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class BoTConfig:
    iterations: int = sized(10, "depth")
    trees: int = sized(15, "width")
    branching: int = sized(2, "width")
    max_depth: int = sized(30, "depth")
    max_sinks: int = sized(4, "count")
    max_expansions: int | None = sized(None, "count")
    """Expansions per tree at most; None (the paper): grow until max_sinks sinks or nothing is open."""
    distinct_retries: int = sized(2, "count")
    """Extra requests for a node whose sampled children repeat each other, to get distinct thoughts."""
    policies: tuple[Policy, ...] = sized(("dfs", "bfs", "leaf_best"), "count")
    temperatures: tuple[float, ...] = sized(POOL, "count")
    top_ps: tuple[float, ...] = sized(POOL, "count")
    judge_temperature: float = 0.2
    analyst_temperature: float = 0.3
    aggregation: Literal["greedy", "best_first"] = "best_first"
    experience_cap: int | None = sized(None, "count")
    """Keep only the last k experiences in prompts (None: all, the paper's default of adding)."""
    step_tokens: int = sized(128, "tokens")
    confident_score: float | None = 0.9
    """A final chain whose every step scores above this stops the iteration's other trees (None: never)."""

    def __post_init__(self) -> None:
        for name in ("iterations", "trees", "branching", "max_depth", "max_sinks", "step_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"BoTConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_expansions is not None and self.max_expansions < 1:
            raise ValueError(f"BoTConfig.max_expansions must be >= 1 or None, got {self.max_expansions}")
        if self.distinct_retries < 0:
            raise ValueError(f"BoTConfig.distinct_retries must be >= 0, got {self.distinct_retries}")
        if self.aggregation not in ("greedy", "best_first"):
            raise ValueError(f"BoTConfig.aggregation must be greedy or best_first, got {self.aggregation!r}")
        if not self.policies or set(self.policies) - {"dfs", "bfs", "leaf_best"}:
            raise ValueError(f"BoTConfig.policies must be drawn from dfs, bfs, leaf_best, got {self.policies}")
        for name in ("temperatures", "top_ps"):  # the trees cycle through these pools
            pool = getattr(self, name)
            if not pool or any(value < 0 for value in pool) or (name == "top_ps" and any(v > 1 for v in pool)):
                raise ValueError(f"BoTConfig.{name} must be a non-empty list of values in range, got {list(pool)}")

    def worst_case_calls(self) -> int | None:
        """Per expansion: the writer (plus retries for repeated thoughts) and a judge call per child; per
        iteration, one analysis. None without ``max_expansions``: a tree then grows until it has
        ``max_sinks`` sinks, which the model decides (bound the run with ``max_calls``)."""
        if self.max_expansions is None:
            return None
        per_expansion = 1 + self.distinct_retries + self.branching
        return self.iterations * (self.trees * self.max_expansions * per_expansion + 1)


def fit_trees(config: BoTConfig, allowance: Allowance) -> BoTConfig:
    """Fewer trees, so that each can expand at least once (the writer and a judge call per child, beside the
    iteration's analysis), and steps no longer than the tokens allow."""
    step = min(config.step_tokens, 2 * MIN_CHAIN_TOKENS)
    each = config.branching * (step + 2 * allowance.prompt_tokens)
    trees = allowance.branches(config.trees, calls_each=1 + config.branching, fixed_calls=1, tokens_each=each)
    return shrunk(config, trees=trees)


@dataclass(frozen=True)
class TreePlan:
    iteration: int
    tree: int
    policy: Policy
    temperature: float
    top_p: float


def plan_tree(config: BoTConfig, seed: int, iteration: int, tree: int) -> TreePlan:
    """The tree's policy is the same every iteration; its temperature and top_p are drawn per iteration."""
    policy = rng(seed, "bot-policy", tree).choice(config.policies)
    draw = rng(seed, "bot", iteration, tree)
    return TreePlan(iteration, tree, policy, draw.choice(config.temperatures), draw.choice(config.top_ps))


def next_to_grow(graph: ThoughtGraph, open_nodes: list[int], policy: Policy) -> int:
    """The open node a policy grows next: DFS the newest, BFS the oldest, leaf-wise the best-scored node
    on the deepest level (ties to the earlier node). See the module docstring for how DFS differs from
    the reference's preorder choice."""
    if policy == "dfs":
        return open_nodes[-1]
    if policy == "bfs":
        return open_nodes[0]
    deepest = max(graph.nodes[i].depth for i in open_nodes)
    level = [i for i in open_nodes if graph.nodes[i].depth == deepest]
    return max(level, key=lambda i: (graph.nodes[i].score or 0.0, -i))


@dataclass
class TreeResult:
    plan: TreePlan
    sinks: list[int] = field(default_factory=list)
    """The ends of the tree's chains: final answers and nodes at the depth limit."""
    open_nodes: list[int] = field(default_factory=list)
    """Nodes left unexpanded when the tree stopped: partial chains."""


def chain_score(context: RunContext, leaf: int) -> float:
    return sum(context.graph.nodes[i].score or 0.0 for i in context.graph.path(leaf))


def aggregate_best_first(context: RunContext, leaves: list[int]) -> list[int]:
    """The chain (over all trees) with the largest sum of step scores."""
    best_leaf, best_score = None, float("-inf")
    for leaf in leaves:
        score = chain_score(context, leaf)
        if score > best_score:
            best_leaf, best_score = leaf, score
    return context.graph.path(best_leaf) if best_leaf is not None else []


def aggregate_greedy(context: RunContext, tree_chains: list[list[int]]) -> list[int]:
    """Step by step, the best-scored step found at that index in any tree's best chain."""
    chain = []
    for index in range(max((len(c) for c in tree_chains), default=0)):
        candidates = [c[index] for c in tree_chains if len(c) > index]
        chain.append(max(candidates, key=lambda i: (context.graph.nodes[i].score or 0.0, -i)))
    return chain


class BoTState(TypedDict, total=False):
    iteration: int
    trees: Annotated[list[TreeResult], operator.add]
    answers: Annotated[list[str], operator.add]
    chain: list[int]
    done: bool


async def boosting_of_thoughts(context: RunContext, config: BoTConfig) -> Outcome:
    step_writer, step_judge, chain_analyst = (
        thinker(context, max_tokens=config.step_tokens),
        judge(context),
        analyst(context),
    )
    context.used(step_writer, step_judge, chain_analyst)

    def experiences() -> list[str]:
        kept = (
            context.graph.experiences[-config.experience_cap :] if config.experience_cap else context.graph.experiences
        )
        return [x.render() for x in kept]

    async def expand(plan: TreePlan, node: int, expansion: int) -> list[int]:
        """``branching`` distinct children of ``node`` (repeats dropped and asked for again), each judged.
        Children join the graph as they arrive, so a budget stop keeps them."""
        steps = context.graph.steps(node) if node != ROOT else []
        children: list[ThoughtNode] = []
        seen: set[str] = set()
        for attempt in range(config.distinct_retries + 1):
            reply = await step_writer.run(
                question=context.question,
                steps=steps,
                experiences=experiences(),
                n=config.branching - len(children),
                temperature=plan.temperature,
                top_p=plan.top_p,
                seed=derived_seed(context.seed, "bot", plan.iteration, plan.tree, expansion, attempt),
            )
            for text in reply.texts:
                if " ".join(text.split()) in seen:
                    continue
                seen.add(" ".join(text.split()))
                metadata = {"iteration": plan.iteration, "tree": plan.tree, "policy": plan.policy}
                children.append(context.add_thought(node, text, answer=stated_answer(text), metadata=metadata))
            if len(children) >= config.branching:
                break
            record_event("repeated_thought")
        scores = await asyncio.gather(
            *(
                step_judge.run(
                    question=context.question,
                    steps=[*steps, child.text],
                    temperature=config.judge_temperature,
                    seed=derived_seed(context.seed, "judge", plan.iteration, plan.tree, expansion, index),
                )
                for index, child in enumerate(children)
            )
        )
        for child, score in zip(children, scores, strict=True):
            child.score = score.parsed[0]
        return [c.id for c in children]

    confident: dict[int, asyncio.Event] = {}
    """Per iteration: set once a tree holds a confident final chain (the other trees then stop)."""

    def is_confident(leaf: int) -> bool:
        graph = context.graph
        return config.confident_score is not None and all(
            (graph.nodes[i].score or 0.0) > config.confident_score for i in graph.path(leaf)
        )

    async def grow_tree(plan: TreePlan) -> TreeResult:
        """Grow one tree by its policy until it has max_sinks sinks, nothing is left to expand, or another
        tree of the iteration found a confident final chain."""
        graph, result, expansion = context.graph, TreeResult(plan, open_nodes=[ROOT]), 0
        stop = confident.setdefault(plan.iteration, asyncio.Event())
        while result.open_nodes and len(result.sinks) < config.max_sinks and not stop.is_set():
            if config.max_expansions is not None and expansion >= config.max_expansions:
                break
            node = next_to_grow(graph, result.open_nodes, plan.policy)
            result.open_nodes.remove(node)
            for child in await expand(plan, node, expansion):
                child_node = graph.nodes[child]
                if child_node.is_final or child_node.depth + 1 >= config.max_depth:  # the root counts
                    result.sinks.append(child)
                    if child_node.is_final and is_confident(child) and not stop.is_set():
                        record_event("bot_confident_stop")
                        stop.set()
                else:
                    result.open_nodes.append(child)
            expansion += 1
        return result

    async def grow(task: dict) -> BoTState:
        result = await grow_tree(plan_tree(config, context.seed, task["iteration"], task["tree"]))
        return {"trees": [result]}

    def fan_out(state: BoTState) -> list[Send] | str:
        if state.get("done"):
            return END
        return [Send("grow", {"iteration": state["iteration"], "tree": t}) for t in range(config.trees)]

    async def aggregate(state: BoTState) -> BoTState:
        results = [r for r in state["trees"] if r.plan.iteration == state["iteration"]]
        finished = any(r.sinks for r in results)
        ends = {r.plan.tree: r.sinks if finished else r.sinks + r.open_nodes for r in results}
        if config.aggregation == "best_first":
            chain = aggregate_best_first(context, [leaf for leaves in ends.values() for leaf in leaves])
        else:
            best_per_tree = [aggregate_best_first(context, leaves) for leaves in ends.values()]
            chain = aggregate_greedy(context, [c for c in best_per_tree if c])
        return {"chain": chain}

    def iteration_answer(state: BoTState, chain: list[int]) -> str | None:
        """The aggregated chain's answer; if it states none, the best-scored finished chain's."""
        if chain and context.graph.nodes[chain[-1]].answer:
            return context.graph.nodes[chain[-1]].answer
        finals = [
            leaf
            for result in state["trees"]
            if result.plan.iteration == state["iteration"]
            for leaf in result.sinks
            if context.graph.nodes[leaf].is_final
        ]
        best = aggregate_best_first(context, finals)
        return context.graph.nodes[best[-1]].answer if best else None

    async def analyze(state: BoTState) -> BoTState:
        chain = state["chain"]
        steps = [context.graph.nodes[i].text for i in chain]
        answer = iteration_answer(state, chain)
        analysis = (
            await chain_analyst.run(
                question=context.question,
                steps=steps,
                temperature=config.analyst_temperature,
                seed=derived_seed(context.seed, "analyst", state["iteration"]),
            )
        ).parsed[0]
        context.graph.experiences.append(
            Experience(steps, analysis.text, analysis.bad_steps, {"iteration": state["iteration"], "chain": chain})
        )
        done = analysis.finds_no_error or state["iteration"] + 1 >= config.iterations
        return {"iteration": state["iteration"] + 1, "answers": [answer or ""], "done": done}

    builder = StateGraph(BoTState)
    builder.add_node("grow", grow)
    builder.add_node("aggregate", aggregate)
    builder.add_node("analyze", analyze)
    builder.add_conditional_edges(START, fan_out, ["grow"])
    builder.add_edge("grow", "aggregate")
    builder.add_edge("aggregate", "analyze")
    builder.add_conditional_edges("analyze", fan_out, ["grow", END])
    state = await builder.compile().ainvoke(
        {"iteration": 0, "trees": [], "answers": [], "done": False}, {"recursion_limit": 10 * config.iterations + 10}
    )
    chain = state["chain"]
    context.graph.chosen = chain
    answer = state["answers"][-1] or None
    _, votes = majority_vote(state["answers"])
    return Outcome(answer, "\n".join(context.graph.nodes[i].text for i in chain), votes or Counter())


SPEC = MethodSpec(
    "bot",
    "Boosting of Thoughts",
    BoTConfig,
    boosting_of_thoughts,
    tiny={"iterations": 1, "trees": 2, "max_expansions": 1, "step_tokens": 32},
    presets=dataset_presets("bot"),
    fit=fit_trees,
)
