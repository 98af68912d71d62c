"""Confidence-guided tree search ("Guided by Gut", 2025): no reward model, the model's own confidence.

``paths`` beams live in ``paths / candidates`` independent subtrees. Each beam is one continuing
chain of thought: every iteration the model continues the same assistant message by one step (up
to the step boundary, at least ``min_step_tokens`` long), ``candidates`` times in one request with
logprobs, and the beam keeps the best continuation by

    score = C + λ·N,  C = mean exp(logprob) of the step's tokens,
                      N = share of the step's tokens that are neither in the problem nor earlier on the beam.

Each subtree is one beam from its first step, as the reference's ``n // beam_width`` beams, so an iteration
costs ``paths`` samples. When a beam finishes, every candidate of its last step is a finished chain (the
reference returns ``beam_width`` completions per beam, ``paths`` in all), weighted by its own step
confidence; a degenerate candidate is dropped. Temperature is
``early_temperature`` for the first ``early_iterations`` iterations, then ``late_temperature``. A beam
ends at a final answer, at the step cap (the final-answer cue is appended and the chain continued),
or when the degeneration guard prunes it. The answer is a confidence-weighted vote over finished
beams (final-step confidences summed per answer), dropping those under a floor.

As the reference (Amirhosein-gh98/Guided-by-Gut, ``diverse_verifier_tree_search_GG.py``): continuation
of one assistant message, novelty over tokens, the degeneration guard (more than 3 "wait" in the last
150 characters of a candidate step, checked on iterations after ``degeneration_after`` that are
multiples of ``degeneration_every``, except the last three), the forced final-answer cue at the cap, and
the reference MATH recipe's sampling (temperatures 1.0 then 0.6, top_p 0.95, λ = 0.5).

Defaults that differ from the reference, for cost: ``paths`` 8 (the recipes run 32), ``max_steps`` 20 (200
iterations), ``step_tokens`` 256 per step (the reference caps only the whole chain, at 14,000 tokens),
``min_step_tokens`` 0 (the reference's default 10; the ``math`` presets set its 50). With fewer iterations the
degeneration guard's schedule scales: by default it starts after 20% of ``max_steps`` and runs every 5% (40
and 10 of the reference's 200); ``degeneration_after`` / ``degeneration_every`` set it explicitly.

Deviations: the step boundary is a stop string, not a token id (METHODS.md: never a model's token
id); backends that cannot continue a message in place (plain OpenAI-compatible servers without
vLLM's ``continue_final_message``) get each step asked for with the shared step prompt instead, and
this is counted (``gg_steps_reprompted``); without a tokenizer in process (remote servers) novelty
compares words instead of tokens; the minimum step length is enforced while decoding on llama.cpp,
vLLM and vLLM servers, and only for the end-of-sequence token on transformers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from thoughtgraph.agents.runtime import Agent, derived_seed
from thoughtgraph.backends import Choice, record_event
from thoughtgraph.reasoning.answers import NUMBER_PATTERN, extract_answer, stated_answer
from thoughtgraph.reasoning.context import RunContext
from thoughtgraph.reasoning.cot import CoTConfig, answer_after
from thoughtgraph.reasoning.fitting import MIN_CHAIN_TOKENS, Allowance, shrunk
from thoughtgraph.reasoning.graph import ROOT
from thoughtgraph.reasoning.options import server_setting, sized
from thoughtgraph.reasoning.outcome import Outcome
from thoughtgraph.reasoning.spec import MethodSpec, dataset_presets
from thoughtgraph.reasoning.steps import majority_vote, thinker, weighted_vote

DEGENERATE_SCORE = -100.0


@dataclass(frozen=True)
class GGConfig:
    paths: int = sized(8, "width")
    candidates: int = sized(4, "width")
    novelty_weight: float = 0.5
    early_temperature: float = 1.0
    late_temperature: float = 0.6
    early_iterations: int = sized(11, "depth")
    """Iterations at ``early_temperature``: the reference's ``i <= 10``."""
    top_p: float = 0.95
    max_steps: int = sized(20, "depth")
    step_tokens: int = sized(256, "tokens")
    min_step_tokens: int = sized(0, "tokens")
    """Shortest step in tokens, enforced while decoding (10 for AIME, 50 for MATH in the reference)."""
    step_boundary: str = "\n"
    degeneration_word: str = "wait"
    max_degeneration_repeats: int = sized(3, "count")
    """A candidate step with more than this many ``degeneration_word`` in its last 150 characters is pruned."""
    degeneration_window_chars: int = sized(150, "count")
    degeneration_after: int | None = sized(None, "count")
    """Iterations before the guard runs; None: 20% of ``max_steps`` (the reference: 40 of 200)."""
    degeneration_every: int | None = sized(None, "count")
    """The guard runs on multiples of this; None: 5% of ``max_steps``, at least 1 (the reference: 10 of 200)."""
    final_answer_cue: str = "Final answer: \\boxed{"
    """Appended to a chain at the step cap; the chain is then continued to state its answer."""
    answer_tokens: int = sized(32, "tokens")
    confidence_floor: float = 0.1
    vote: Literal["confidence", "majority", "top1"] = "confidence"
    answer_pattern: str | None = server_setting(NUMBER_PATTERN)
    """The final answer's form when a backend that cannot continue a chain is asked for it separately."""

    def __post_init__(self) -> None:
        if self.paths < 1 or self.candidates < 1 or self.paths % self.candidates:
            raise ValueError(
                f"GGConfig: paths ({self.paths}) must be a positive multiple of candidates ({self.candidates})"
            )
        for name in ("max_steps", "step_tokens", "early_iterations", "answer_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"GGConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.degeneration_every is not None and self.degeneration_every < 1:
            raise ValueError(f"GGConfig.degeneration_every must be >= 1 or None, got {self.degeneration_every}")
        if self.degeneration_after is not None and self.degeneration_after < 0:
            raise ValueError(f"GGConfig.degeneration_after must be >= 0 or None, got {self.degeneration_after}")
        if not 0 <= self.min_step_tokens <= self.step_tokens:
            raise ValueError(f"GGConfig.min_step_tokens must be in [0, step_tokens], got {self.min_step_tokens}")
        if self.vote not in ("confidence", "majority", "top1"):
            raise ValueError(f"GGConfig.vote must be confidence, majority or top1, got {self.vote!r}")
        for name in ("step_boundary", "degeneration_word"):  # a stop string; a word counted in each step
            if not getattr(self, name):
                raise ValueError(f"GGConfig.{name} must not be empty")

    def worst_case_calls(self) -> int:
        """One request per beam (a subtree) and step, and one more per beam at the cap."""
        return self.paths // self.candidates * (self.max_steps + 1)


def fit_beams(config: GGConfig, allowance: Allowance) -> GGConfig:
    """Fewer beams, then fewer steps, so that one beam reaches its answer within the calls (a request per step
    and the cue); fewer candidates, then shorter steps, within the tokens."""
    beams = config.paths // config.candidates
    steps = config.max_steps
    if allowance.calls is not None:
        beams = allowance.branches(beams, calls_each=steps + 1)
        steps = max(1, min(steps, allowance.calls // beams - 1))
    step_tokens = config.step_tokens
    candidates = config.candidates
    if allowance.tokens is not None:
        per_step = allowance.tokens // (beams * steps) - allowance.prompt_tokens  # a step's prompt is resent
        candidates = max(1, min(candidates, per_step // max(1, min(step_tokens, MIN_CHAIN_TOKENS // 2))))
        step_tokens = max(1, min(step_tokens, per_step // candidates))
    return shrunk(
        config, paths=beams * candidates, candidates=candidates, max_steps=steps, step_tokens=step_tokens,
        min_step_tokens=min(config.min_step_tokens, step_tokens),
    )  # fmt: skip


def _words(text: str) -> list[str]:
    return [t.lower() for t in re.findall(r"\w+|[^\w\s]", text)]


def step_score(
    choice: Choice, seen: set[str], novelty_weight: float, key: Callable[[str], str] = str
) -> tuple[float, float, float]:
    """(score, confidence, novelty) of one sampled step; ``seen``: the tokens of the problem and of the beam,
    as ``key`` makes them comparable (the token itself, or its lower-cased word without a tokenizer)."""
    tokens, logprobs = choice.tokens or [], choice.logprobs or []
    if not tokens or not logprobs:
        return (0.0, 0.0, 0.0)
    confidence = sum(math.exp(lp) for lp in logprobs) / len(logprobs)
    novelty = sum(1 for t in tokens if key(t) not in seen) / len(tokens)
    return (confidence + novelty_weight * novelty, confidence, novelty)


def checks_degeneration(iteration: int, config: GGConfig) -> bool:
    """Whether this iteration runs the degeneration guard (the reference: after 40, every 10th, not the last 3;
    by default scaled to ``max_steps``)."""
    after = config.degeneration_after if config.degeneration_after is not None else config.max_steps // 5
    every = config.degeneration_every if config.degeneration_every is not None else max(1, config.max_steps // 20)
    return iteration > after and iteration % every == 0 and iteration < config.max_steps - 3


def degenerate(step: str, config: GGConfig) -> bool:
    """More than ``max_degeneration_repeats`` of the degeneration word in the step's last characters."""
    window = re.sub(r"[^a-z\s]+", " ", step[-config.degeneration_window_chars :].lower()).split()
    return window.count(config.degeneration_word) > config.max_degeneration_repeats


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
    backend = context.backend
    backend.require(logprobs=True)  # refuse before any call
    graph = context.graph
    continues = backend.capabilities.continue_message
    boundary = (config.step_boundary,)
    if continues:
        step_writer = Agent("gg/solve", backend, context.budget, max_tokens=config.step_tokens, stop=boundary)
    else:
        step_writer = thinker(context, max_tokens=config.step_tokens, stop=boundary)
    step_writer.min_tokens = config.min_step_tokens
    context.used(step_writer)
    problem_pieces = backend.token_pieces(context.question)
    if problem_pieces is None:  # no tokenizer here (a remote server): compare lower-cased words instead

        def token_key(token: str) -> str:
            return token.strip().lower()

        problem_tokens = set(_words(context.question))
    else:
        token_key, problem_tokens = str, set(problem_pieces)

    def chain_text(node: int) -> str:
        steps = graph.steps(node) if node != ROOT else []
        return "".join(step + config.step_boundary for step in steps)

    def seen_tokens(node: int) -> set[str]:
        beam = {token_key(t) for n in graph.path(node) for t in graph.nodes[n].metadata["tokens"] or ()}
        return problem_tokens | beam

    async def write(node: int, **options: object):
        if continues:
            return await step_writer.run(question=context.question, reply_so_far=chain_text(node) or None, **options)
        record_event("gg_steps_reprompted")
        steps = graph.steps(node) if node != ROOT else []
        return await step_writer.run(question=context.question, steps=steps, experiences=[], **options)

    async def finish_at_cap(node: int) -> None:
        """Append the final-answer cue to the chain and let the model continue it to its answer."""
        if not continues:
            chain = "\n".join(graph.steps(node))
            graph.nodes[node].answer = await answer_after(
                context, CoTConfig(answer_pattern=config.answer_pattern), chain
            )
            return
        cue = Agent("gg/solve", backend, context.budget, max_tokens=config.answer_tokens)
        reply = await cue.run(
            question=context.question, reply_so_far=chain_text(node) + config.final_answer_cue, seed=context.seed
        )
        graph.nodes[node].answer = extract_answer(config.final_answer_cue + reply.texts[0])

    async def advance(task: dict) -> GGState:
        """One beam's iteration: sample candidates and keep the best; when the beam finishes, its other
        candidates finish beside it as chains of their own (pruned when degenerate)."""
        beam: Beam = task["beam"]
        iteration = task["iteration"]
        temperature = config.early_temperature if iteration < config.early_iterations else config.late_temperature
        reply = await write(
            beam.node,
            n=config.candidates,
            temperature=temperature,
            top_p=config.top_p,
            logprobs=True,
            seed=derived_seed(context.seed, "gg", beam.subtree, iteration),  # a subtree is one chain: its step
        )
        seen = seen_tokens(beam.node)
        guard = checks_degeneration(iteration, config)
        scored = []
        for choice in reply.result.choices:
            score, confidence, novelty = step_score(choice, seen, config.novelty_weight, token_key)
            if guard and degenerate(choice.text, config):
                score = DEGENERATE_SCORE
            scored.append((score, confidence, novelty, choice))
        best = max(range(len(scored)), key=lambda k: scored[k][0])
        nodes = []
        for score, confidence, novelty, choice in scored:
            text = choice.text.strip()
            nodes.append(context.add_thought(
                beam.node, text, score=score, confidence=confidence, novelty=novelty, answer=stated_answer(text),
                metadata={"subtree": beam.subtree, "tokens": choice.tokens, "kept": False},
            ))  # fmt: skip
        kept = nodes[best]
        kept.metadata["kept"] = True
        successor = Beam(beam.subtree, kept.id, done=kept.is_final)
        if scored[best][0] <= DEGENERATE_SCORE:
            successor.pruned = True
            record_event("degenerate_beam")
        elif not successor.done and kept.depth >= config.max_steps:
            await finish_at_cap(kept.id)
            successor.done = True
        beams = [successor]
        if successor.done:  # the last step's other candidates are finished chains too
            beams += [
                Beam(beam.subtree, node.id, done=score > DEGENERATE_SCORE, pruned=score <= DEGENERATE_SCORE)
                for node, (score, *_) in zip(nodes, scored, strict=True)
                if node is not kept
            ]
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


SPEC = MethodSpec(
    "gg",
    "Guided by Gut",
    GGConfig,
    guided_by_gut,
    tiny={"paths": 2, "candidates": 2, "max_steps": 2, "step_tokens": 32},
    presets=dataset_presets("gg"),
    fit=fit_beams,
)
