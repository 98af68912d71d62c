"""Tree of Thoughts, breadth first (Yao et al., 2023): per level, propose k next steps for every
kept state (one Send each), value every candidate with the judge (one Send each), keep the best b.

As the reference (princeton-nlp/tree-of-thought-llm, ``get_values``): a state's value is the sum of
``value_samples`` (3) sampled valuations, asked for in one request; a state that repeats an earlier state of
the same level (the same steps, after whitespace normalisation) is valued 0 without a call."""

from __future__ import annotations

import operator
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from thoughtgraph.agents.runtime import Agent, derived_seed
from thoughtgraph.backends import Constraint, record_event
from thoughtgraph.reasoning.answers import extract_answer, stated_answer
from thoughtgraph.reasoning.context import RunContext
from thoughtgraph.reasoning.fitting import MIN_CHAIN_TOKENS, Allowance, shrunk
from thoughtgraph.reasoning.graph import ROOT
from thoughtgraph.reasoning.options import sized
from thoughtgraph.reasoning.outcome import Outcome
from thoughtgraph.reasoning.spec import MethodSpec, dataset_presets
from thoughtgraph.reasoning.steps import judge, thinker


@dataclass(frozen=True)
class ToTConfig:
    proposals: int = sized(3, "width")
    beam: int = sized(2, "width")
    max_depth: int = sized(6, "depth")
    temperature: float = 0.7
    step_tokens: int = sized(128, "tokens")
    value_mode: Literal["score", "words"] = "score"
    """score: the judge's number in [0, 1]; words: sure / likely / impossible, mapped by value_words."""
    value_words: tuple[tuple[str, float], ...] = sized(
        (("impossible", 0.001), ("likely", 1.0), ("sure", 20.0)), "count"
    )
    value_samples: int = sized(3, "width")
    """Valuations per state, summed (the paper's n_evaluate_sample)."""
    value_temperature: float = 0.7

    def __post_init__(self) -> None:
        for name in ("proposals", "beam", "max_depth", "step_tokens", "value_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"ToTConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.value_mode not in ("score", "words"):
            raise ValueError(f"ToTConfig.value_mode must be score or words, got {self.value_mode!r}")

    def worst_case_calls(self) -> int:
        """Level 1: one proposal request and a value call per proposal; each deeper level: one proposal
        request per kept state and a value call per proposal."""
        return 1 + self.proposals + (self.max_depth - 1) * (self.beam + self.beam * self.proposals)


def fit_levels(config: ToTConfig, allowance: Allowance) -> ToTConfig:
    """Fewer proposals, then a narrower beam, so that at least one level (a proposal request and a valuation per
    proposal) fits the calls, and its steps the tokens."""
    step = min(config.step_tokens, MIN_CHAIN_TOKENS) + allowance.prompt_tokens
    proposals = allowance.branches(config.proposals, calls_each=1, fixed_calls=1, tokens_each=2 * step)
    beam = allowance.branches(config.beam, calls_each=1 + proposals, tokens_each=2 * step * proposals)
    return shrunk(config, proposals=proposals, beam=beam)


def word_valuer(context: RunContext, config: ToTConfig) -> Agent[float]:
    """The value prompt of ToT's Game of 24: one word, mapped to a number (unknown words count as
    the lowest value, and as a parse failure)."""
    values = dict(config.value_words)

    def parse(text: str) -> float:
        word = text.strip().lower().rstrip(".")
        if word not in values:
            record_event("parse_failure")
            return min(values.values())
        return values[word]

    return Agent(
        "tot/value_words",
        context.backend,
        context.budget,
        parse=parse,
        constraint=Constraint.one_of(*values),
        max_tokens=4,
    )


class ToTState(TypedDict, total=False):
    depth: int
    frontier: list[int]
    proposed: Annotated[list[int], operator.add]
    valued: Annotated[list[int], operator.add]


def keep_best(context: RunContext, candidates: list[int], beam: int) -> list[int]:
    """The ``beam`` best-scored candidates (ties: the earlier one)."""
    return sorted(candidates, key=lambda i: (-(context.graph.nodes[i].score or 0.0), i))[:beam]


async def tree_of_thoughts(context: RunContext, config: ToTConfig) -> Outcome:
    graph = context.graph
    proposer = thinker(context, max_tokens=config.step_tokens)
    valuer = word_valuer(context, config) if config.value_mode == "words" else judge(context)
    context.used(proposer, valuer)

    async def propose(task: dict) -> ToTState:
        node = task["node"]
        reply = await proposer.run(
            question=context.question,
            steps=graph.steps(node) if node else [],
            experiences=[],
            n=config.proposals,
            temperature=config.temperature,
            seed=derived_seed(context.seed, "tot", *graph.position(node)),
        )
        return {"proposed": [context.add_thought(node, t, answer=stated_answer(t)).id for t in reply.texts]}

    async def value(task: dict) -> ToTState:
        node = graph.nodes[task["node"]]
        if task["duplicate"]:
            node.score = 0.0
            record_event("tot_duplicate_state")
            return {"valued": [node.id]}
        reply = await valuer.run(
            question=context.question,
            steps=graph.steps(node.id),
            n=config.value_samples,
            temperature=config.value_temperature,
            seed=derived_seed(context.seed, "tot-value", *graph.position(node.id)),
        )
        node.score = float(sum(reply.parsed))
        return {"valued": [node.id]}

    def to_proposals(state: ToTState) -> list[Send] | str:
        open_nodes = [n for n in state["frontier"] if n == ROOT or not graph.nodes[n].is_final]
        if state["depth"] >= config.max_depth or not open_nodes:
            return END
        return [Send("propose", {"node": n}) for n in open_nodes]

    def to_values(state: ToTState) -> list[Send]:
        fresh = [n for n in state["proposed"] if graph.nodes[n].depth == state["depth"] + 1]
        seen: set[str] = set()
        sends = []
        for n in sorted(fresh, key=graph.position):  # by position, not completion order
            key = " ".join(" ".join(graph.steps(n)).split())
            sends.append(Send("value", {"node": n, "duplicate": key in seen}))
            seen.add(key)
        return sends

    async def select(state: ToTState) -> ToTState:
        level = [n for n in state["valued"] if graph.nodes[n].depth == state["depth"] + 1]
        return {"frontier": keep_best(context, level, config.beam), "depth": state["depth"] + 1}

    builder = StateGraph(ToTState)
    builder.add_node("propose", propose)
    builder.add_node("gather", lambda state: {})
    builder.add_node("value", value)
    builder.add_node("select", select)
    builder.add_conditional_edges(START, to_proposals, ["propose", END])
    builder.add_edge("propose", "gather")
    builder.add_conditional_edges("gather", to_values, ["value"])
    builder.add_edge("value", "select")
    builder.add_conditional_edges("select", to_proposals, ["propose", END])
    state = await builder.compile().ainvoke(
        {"depth": 0, "frontier": [ROOT], "proposed": [], "valued": []}, {"recursion_limit": 5 * config.max_depth + 10}
    )
    finals = [n for n in graph.finals()]
    pool = finals or [graph.nodes[i] for i in state["frontier"] if i != ROOT]
    best = min(pool, key=lambda n: (-(n.score or 0.0), graph.position(n.id)), default=None)  # ties: by position
    if best is None:
        return Outcome(None, "")
    graph.chosen = graph.path(best.id)
    answer = best.answer or extract_answer("\n".join(graph.steps(best.id)))
    return Outcome(answer, "\n".join(graph.steps(best.id)), Counter([answer] if answer else []))


SPEC = MethodSpec(
    "tot",
    "Tree of Thoughts",
    ToTConfig,
    tree_of_thoughts,
    tiny={"proposals": 2, "beam": 1, "max_depth": 2, "step_tokens": 32},
    presets=dataset_presets("tot"),
    fit=fit_levels,
)
