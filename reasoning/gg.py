"""Confidence-guided tree search ("Guided by Gut", 2025): no reward model, the model's own confidence.

``paths`` beams live in ``paths / candidates`` independent subtrees. Each iteration every live beam
samples ``candidates`` one-step continuations in one request (with logprobs) and keeps the best by

    score = C + λ·N,  C = mean exp(logprob) of the step's tokens,
                      N = share of the step's tokens seen neither in the prompt nor earlier on the beam.

The first step of a subtree keeps all its candidates as the subtree's beams. Temperature is 1.0 for
the first iterations, then lower. A beam ends at a final answer, at the step cap (then the final
answer is asked for), or when the degeneration guard prunes it. The answer is a confidence-weighted
vote over finished beams (final-step confidences summed per answer), dropping those under a floor.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from agents.runtime import derived_seed
from backends import Choice, record_event
from reasoning.answers import NUMBER_PATTERN, extract_answer
from reasoning.context import RunContext
from reasoning.cot import CoTConfig, answer_after
from reasoning.graph import ROOT
from reasoning.outcome import Outcome
from reasoning.steps import final_answer, majority_vote, thinker, weighted_vote


@dataclass(frozen=True)
class GGConfig:
    paths: int = 8
    candidates: int = 4
    novelty_weight: float = 0.5
    early_temperature: float = 1.0
    late_temperature: float = 0.6
    early_iterations: int = 10
    top_p: float = 0.95
    max_steps: int = 20
    step_tokens: int = 256
    min_step_tokens: int = 0
    """Shortest step in tokens: with a minimum, steps are cut at the first boundary after it."""
    step_boundary: str = "\n"
    degeneration_words: tuple[str, ...] = ("wait",)
    max_degeneration_repeats: int = 3
    confidence_floor: float = 0.1
    vote: Literal["confidence", "majority", "top1"] = "confidence"
    answer_pattern: str | None = NUMBER_PATTERN

    def __post_init__(self) -> None:
        if self.paths < 1 or self.candidates < 1 or self.paths % self.candidates:
            raise ValueError(
                f"GGConfig: paths ({self.paths}) must be a positive multiple of candidates ({self.candidates})"
            )
        for name in ("max_steps", "step_tokens", "early_iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"GGConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.vote not in ("confidence", "majority", "top1"):
            raise ValueError(f"GGConfig.vote must be confidence, majority or top1, got {self.vote!r}")


def _words(text: str) -> set[str]:
    return {t.strip().lower() for t in re.findall(r"\w+|[^\w\s]", text)}


def step_score(choice: Choice, seen_text: str, novelty_weight: float) -> tuple[float, float, float]:
    """(score, confidence, novelty) of one sampled step; ``seen_text``: the prompt and the beam so far."""
    tokens, logprobs = choice.tokens or [], choice.logprobs or []
    if not tokens:
        return (0.0, 0.0, 0.0)
    confidence = sum(math.exp(lp) for lp in logprobs) / len(logprobs)
    seen = _words(seen_text)
    novel = sum(1 for t in tokens if t.strip() and t.strip().lower() not in seen)
    novelty = novel / len(tokens)
    return (confidence + novelty_weight * novelty, confidence, novelty)


def degenerate(steps: list[str], config: GGConfig) -> bool:
    """A beam that repeats its last step verbatim or loops on "wait"-style words is pruned."""
    if len(steps) >= 2 and steps[-1].strip() == steps[-2].strip():
        return True
    text = " ".join(steps).lower()
    return any(
        len(re.findall(rf"\b{re.escape(w)}\b", text)) >= config.max_degeneration_repeats
        for w in config.degeneration_words
    )


def cut_step(choice: Choice, config: GGConfig) -> Choice:
    """With a minimum step length, end the step at the first boundary after ``min_step_tokens`` tokens."""
    tokens, logprobs = choice.tokens or [], choice.logprobs or []
    text = ""
    for i, token in enumerate(tokens):
        if i >= config.min_step_tokens and config.step_boundary in token:
            before = token.split(config.step_boundary)[0]
            return Choice(text + before, "stop", i + 1, [*tokens[:i], before], logprobs[: i + 1])
        text += token
    return choice


@dataclass
class Beam:
    subtree: int
    node: int
    done: bool = False
    pruned: bool = False


def _updates(existing: list, new: list) -> list:
    """Beam updates of one iteration accumulate; an empty list clears them for the next."""
    return [] if new == [] else existing + new


class GGState(TypedDict, total=False):
    iteration: int
    beams: list[Beam]
    updates: Annotated[list[tuple[int, list[Beam]]], _updates]


async def guided_by_gut(context: RunContext, config: GGConfig) -> Outcome:
    context.backend.require(logprobs=True)  # refuse before any call
    graph = context.graph
    stop = () if config.min_step_tokens else (config.step_boundary,)
    step_writer = thinker(context, max_tokens=config.step_tokens, stop=stop)
    context.used(step_writer)
    prompt_text = " ".join(
        text for _, text in step_writer.prompt.render(question=context.question, steps=[], experiences=[])
    )

    async def finish_at_cap(node: int) -> None:
        answer = await answer_after(
            context, CoTConfig(answer_pattern=config.answer_pattern), "\n".join(graph.steps(node))
        )
        graph.nodes[node].answer = answer

    async def advance(task: dict) -> GGState:
        """One beam's iteration: sample candidates, keep the best (or all, for a subtree's first step)."""
        beam: Beam = task["beam"]
        iteration = task["iteration"]
        steps = graph.steps(beam.node) if beam.node != ROOT else []
        temperature = config.early_temperature if iteration < config.early_iterations else config.late_temperature
        reply = await step_writer.run(
            question=context.question,
            steps=steps,
            experiences=[],
            n=config.candidates,
            temperature=temperature,
            top_p=config.top_p,
            logprobs=True,
            seed=derived_seed(context.seed, "gg", beam.subtree, beam.node, iteration),
        )
        seen = prompt_text + " " + " ".join(steps)
        scored = []
        for raw in reply.result.choices:
            choice = cut_step(raw, config) if config.min_step_tokens else raw
            score, confidence, novelty = step_score(choice, seen, config.novelty_weight)
            scored.append((score, confidence, novelty, choice.text.strip()))
        kept = scored if beam.node == ROOT else [max(scored, key=lambda s: s[0])]
        beams = []
        for score, confidence, novelty, text in kept:
            node = context.add_thought(
                beam.node,
                text,
                score=score,
                confidence=confidence,
                novelty=novelty,
                answer=final_answer(text),
                metadata={"subtree": beam.subtree},
            )
            successor = Beam(beam.subtree, node.id, done=node.is_final)
            if not successor.done and degenerate(graph.steps(node.id), config):
                successor.pruned = True
                record_event("degenerate_beam")
            elif not successor.done and node.depth >= config.max_steps:
                await finish_at_cap(node.id)
                successor.done = True
            beams.append(successor)
        return {"updates": [(task["index"], beams)]}

    def fan_out(state: GGState) -> list[Send] | str:
        live = [(i, b) for i, b in enumerate(state["beams"]) if not b.done and not b.pruned]
        if not live:
            return END
        return [Send("advance", {"beam": b, "index": i, "iteration": state["iteration"]}) for i, b in live]

    async def collect(state: GGState) -> GGState:
        replaced = dict(state["updates"])
        beams = []
        for i, beam in enumerate(state["beams"]):
            beams.extend(replaced.get(i, [beam]))
        return {"beams": beams, "updates": [], "iteration": state["iteration"] + 1}

    builder = StateGraph(GGState)
    builder.add_node("advance", advance)
    builder.add_node("collect", collect)
    builder.add_conditional_edges(START, fan_out, ["advance", END])
    builder.add_edge("advance", "collect")
    builder.add_conditional_edges("collect", fan_out, ["advance", END])
    start = [Beam(subtree, ROOT) for subtree in range(config.paths // config.candidates)]
    state = await builder.compile().ainvoke(
        {"iteration": 0, "beams": start, "updates": []}, {"recursion_limit": 4 * config.max_steps + 10}
    )
    finished = [graph.nodes[b.node] for b in state["beams"] if b.done]
    kept = [n for n in finished if (n.confidence or 0.0) >= config.confidence_floor or n.confidence is None]
    if len(kept) < len(finished):
        record_event("below_confidence_floor", len(finished) - len(kept))
    for node in kept:
        if node.answer is None:
            node.answer = extract_answer(node.text)
    if config.vote == "confidence":
        answer, votes = weighted_vote([(n.answer or "", n.confidence or 0.0) for n in kept])
    elif config.vote == "majority":
        answer, votes = majority_vote([n.answer or "" for n in kept])
    else:
        top = max(kept, key=lambda n: n.confidence or 0.0, default=None)
        answer, votes = (top.answer if top else None), weighted_vote([(n.answer or "", 1.0) for n in kept])[1]
    chosen = max((n for n in kept if n.answer == answer), key=lambda n: n.confidence or 0.0, default=None)
    graph.chosen = graph.path(chosen.id) if chosen else []
    return Outcome(answer, "\n".join(graph.steps(chosen.id)) if chosen else "", votes)
