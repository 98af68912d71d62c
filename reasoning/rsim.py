"""rSIM inference: a planner (leader) picks one strategy before each step, a reasoner (follower) writes that
step under the strategy's instruction (a LangGraph loop of two agents).

The planner is a plug-in: ``planner=None`` prompts the reasoner's own backend, ``planner="hf:DIR#adapter=..."``
(or any backend spec or object) puts a trained or different model in front of any reasoner, the paper's
point. The strategy set is a YAML list of {name, prompt} (``reasoning/presets/rsim_strategies.yaml`` by
default, ``strategies_file`` for your own). The planner answers under a choice constraint where its backend
supports one; otherwise its reply is read for a strategy name, and a reply naming none is an invalid choice:
counted (``invalid_strategy``) and replaced by ``fallback_strategy``. The run ends when a step states the
answer, after ``conclude``, or at ``max_steps``; a chain without a stated answer gets one final-answer request
(as in ``cot``). Our choices (the paper publishes no prompts): the strategy wording, one strategy per step,
greedy planner by default.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypedDict

import yaml
from langgraph.graph import END, START, StateGraph

from thoughtgraph.agents.runtime import Agent, Budget
from thoughtgraph.backends import Backend, Constraint, record_event, shared_backend
from thoughtgraph.reasoning.answers import ANSWER_STATED_PATTERN, stated_answer
from thoughtgraph.reasoning.context import RunContext
from thoughtgraph.reasoning.cot import CoTConfig, answer_after
from thoughtgraph.reasoning.options import server_setting, sized
from thoughtgraph.reasoning.outcome import Outcome
from thoughtgraph.reasoning.spec import MethodSpec

STRATEGIES = Path(__file__).parent / "presets" / "rsim_strategies.yaml"


@lru_cache(maxsize=8)
def load_strategies(path: str | None = None) -> tuple[tuple[str, str], ...]:
    """(name, instruction) pairs from a strategies YAML file."""
    file = Path(path) if path else STRATEGIES
    if not file.is_file():
        raise ValueError(f"rsim: no strategies file at {file}")
    data = yaml.safe_load(file.read_text()) or {}
    entries = data.get("strategies") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"rsim: {file} must hold a non-empty `strategies` list of {{name, prompt}}")
    pairs = []
    for index, entry in enumerate(entries):
        if (
            not isinstance(entry, dict)
            or not str(entry.get("name", "")).strip()
            or not str(entry.get("prompt", "")).strip()
        ):
            raise ValueError(f"rsim: {file} strategy {index + 1} needs a name and a prompt")
        pairs.append((str(entry["name"]).strip(), str(entry["prompt"]).strip()))
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError(f"rsim: {file} names a strategy twice")
    return tuple(pairs)


@dataclass(frozen=True)
class RSIMConfig:
    planner: str | Backend | None = server_setting(None)
    """The planner's backend (a spec or an object); None: the reasoner's backend, prompted."""
    strategies_file: str | None = server_setting(None)
    max_steps: int = sized(8, "depth")
    step_tokens: int = sized(160, "tokens")
    temperature: float = 0.0
    planner_temperature: float = 0.0
    fallback_strategy: str = "continue"
    conclude_strategy: str = "conclude"
    answer_tokens: int = sized(16, "tokens")
    answer_pattern: str | None = server_setting(CoTConfig.answer_pattern)
    start_steps: tuple[str, ...] = sized((), "count")
    """Continue from these steps (a rollout from a mid-solution state; what ``trainers.rsim`` uses); when the
    last one states the answer, the run ends there."""
    start_strategy: str | None = None
    """The strategy of the first step this run writes, instead of asking the planner."""

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.step_tokens < 1 or self.answer_tokens < 1:
            raise ValueError("RSIMConfig: max_steps, step_tokens and answer_tokens must be positive")
        names = [n for n, _ in load_strategies(self.strategies_file)]
        if self.start_strategy is not None and self.start_strategy not in names:
            raise ValueError(f"RSIMConfig: start_strategy {self.start_strategy!r} is not a strategy ({names})")
        for field_name in ("fallback_strategy", "conclude_strategy"):
            if getattr(self, field_name) not in names:
                raise ValueError(f"RSIMConfig: {field_name} {getattr(self, field_name)!r} is not a strategy ({names})")

    def worst_case_calls(self) -> int:
        """A planner call and a reasoner call per step written, and the final-answer request."""
        return 2 * self.max_steps + 1


class RSIMState(TypedDict, total=False):
    steps: list[str]
    strategies: list[str]
    strategy: str
    answer: str | None
    parent: int


def planner_backend(config: RSIMConfig, reasoner: Backend) -> Backend:
    if config.planner is None:
        return reasoner
    if isinstance(config.planner, Backend):
        return config.planner
    return shared_backend(config.planner)


def read_strategy(text: str, names: list[str]) -> str | None:
    """The first strategy name the planner's reply contains (whole word, any case)."""
    positions = {}
    for name in names:
        match = re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text, re.IGNORECASE)
        if match:
            positions[name] = match.start()
    return min(positions, key=positions.__getitem__) if positions else None


def planner_agent(backend: Backend, budget: Budget, names: list[str]) -> Agent:
    """The leader: one strategy name, under a choice constraint where the backend supports one."""
    return Agent("rsim/planner", backend, budget, max_tokens=8, constraint=Constraint.one_of(*names))


async def choose_strategy(
    planner: Agent, question: str, steps: list[str], names: list[str], fallback: str, **sampling: Any
) -> tuple[str, bool]:
    """(the strategy the planner picks for the next step, whether its reply named one); a reply naming none
    gets ``fallback``. Shared by the method and its trainer's rollouts."""
    reply = await planner.run(question=question, steps=steps, names=", ".join(names), **sampling)
    chosen = read_strategy(reply.texts[0], names)
    return (chosen, True) if chosen is not None else (fallback, False)


async def rsim(context: RunContext, config: RSIMConfig) -> Outcome:
    strategies = dict(load_strategies(config.strategies_file))
    names = list(strategies)
    planner = planner_agent(planner_backend(config, context.backend), context.budget, names)
    reasoner = Agent(
        "rsim/reasoner", context.backend, context.budget, max_tokens=config.step_tokens, stop=("\nStep", "\n\n"),
        stop_pattern=ANSWER_STATED_PATTERN,
    )  # fmt: skip
    context.used(planner, reasoner)

    async def plan(state: RSIMState) -> RSIMState:
        steps = state.get("steps", [])
        if config.start_strategy is not None and len(steps) == len(config.start_steps):
            return {"strategy": config.start_strategy}
        chosen, named = await choose_strategy(
            planner, context.question, steps, names, config.fallback_strategy,
            temperature=config.planner_temperature, seed=context.seed + len(steps),
        )  # fmt: skip
        if not named:
            record_event("invalid_strategy")
        return {"strategy": chosen}

    async def reason(state: RSIMState) -> RSIMState:
        steps = state.get("steps", [])
        strategy = state["strategy"]
        reply = await reasoner.run(
            question=context.question, steps=steps, instruction=strategies[strategy], temperature=config.temperature,
            seed=context.seed + 1000 + len(steps),
        )  # fmt: skip
        text = reply.texts[0].strip() or "(empty step)"
        answer = stated_answer(text)
        node = context.add_thought(state.get("parent", 0), f"[{strategy}] {text}", answer=answer)
        return {
            "steps": [*steps, text], "strategies": [*state.get("strategies", []), strategy], "answer": answer,
            "parent": node.id,
        }  # fmt: skip

    def route(state: RSIMState) -> str:
        done = state.get("answer") or state["strategy"] == config.conclude_strategy
        written = len(state["steps"]) - len(config.start_steps)
        return END if done or written >= config.max_steps else "plan"

    builder = StateGraph(RSIMState)
    builder.add_node("plan", plan)
    builder.add_node("reason", reason)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "reason")
    builder.add_conditional_edges("reason", route, ["plan", END])
    start: dict[str, Any] = {"steps": list(config.start_steps), "strategies": ["given"] * len(config.start_steps)}
    given = stated_answer(config.start_steps[-1]) if config.start_steps else None
    if given is not None:  # a given step that states the answer ends the run, as a written one does
        state = {**start, "answer": given, "parent": 0}
    else:
        state = await builder.compile().ainvoke(start, {"recursion_limit": 2 * config.max_steps + 5})
    chain = "\n".join(state["steps"])
    answer = state.get("answer")
    if answer is None:
        record_event("parse_failure")
        answer = await answer_after(context, _answer_config(config), chain)
    context.graph.chosen = [state["parent"]]
    return Outcome(answer, _trace(state), Counter([answer] if answer else []))


def _answer_config(config: RSIMConfig) -> CoTConfig:
    return CoTConfig(answer_pattern=config.answer_pattern, answer_tokens=config.answer_tokens)


def _trace(state: dict[str, Any]) -> str:
    return "\n".join(f"[{s}] {t}" for s, t in zip(state["strategies"], state["steps"], strict=True))


_STRATEGY_TAG = re.compile(r"^\[([^\]]+)\] ", re.MULTILINE)


def trace_strategies(trace: str) -> list[str]:
    """The strategy of each step of an ``rsim`` trace (``_trace`` writes ``[compute] 3 + 4 = 7``, one per line)."""
    return _STRATEGY_TAG.findall(trace)


SPEC = MethodSpec("rsim", "rSIM planner-guided reasoning", RSIMConfig, rsim, tiny={"max_steps": 2, "step_tokens": 32})
