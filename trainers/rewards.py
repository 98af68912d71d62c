"""Reward functions with TRL's signature (``f(completions, **columns) -> list[float]``) and the pieces they are
made of, kept pure so they can be checked by hand.

GG's confidence reward (Guided by Gut, checked against the reference ``openr1/src/open_r1/rewards.py`` and its
patched TRL 0.16 ``grpo_trainer.py``):
- a completion is split into steps at a boundary: the token where an occurrence of the boundary string begins
  starts a new step (the reference splits at one token id, Qwen's "\\n\\n"; we match the joined text, so any
  tokenizer works, also one that writes "\\n\\n" as two tokens, as SmolLM2 does);
- a step's confidence is the mean probability of its sampled tokens, exp(logprob) averaged;
- c is the linearly weighted mean of the last 5 steps' confidences, weights 1..k, later steps heavier;
- reward = 1 + c**4 when the graded answer is correct, 1 - 10 * c**4 when wrong.
Kept from the reference: a completion with no tokens gets c = 0.8. Deviations, stated: the token
probabilities come from a forward pass of the current policy at temperature 1 (the reference reads vLLM's
sampling logprobs, and its non-vLLM path passes a flat per-token list where steps are expected, so "the last
5 steps" become the last 5 tokens: a bug we do not copy); a gold answer that cannot be parsed is an error
here (the reference rewards it 1.0, silently skipping the example); correctness comes from ``evals``'
graders in their sandbox, not math-verify alone.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from thoughtgraph.evals.sandbox import shared_sandbox
from thoughtgraph.evals.scoring import GradingInput
from thoughtgraph.reasoning.answers import extract_answer

DEFAULT_BOUNDARY = "\n\n"
LAST_STEPS = 5
EMPTY_CONFIDENCE = 0.8
"""The reference's confidence for a completion without steps."""


def split_steps(
    tokens: Sequence[str], logprobs: Sequence[float], boundary: str = DEFAULT_BOUNDARY
) -> list[list[float]]:
    """The completion's token logprobs grouped into steps: each occurrence of ``boundary`` in the completion's
    text opens a new step at the token where the occurrence begins (that token belongs to the step it opens, as
    in the reference). Matched in the joined text, so a boundary split over tokens counts: SmolLM2 writes
    "\n\n" as two "\n" tokens, where Qwen (the reference's model) has one "\n\n" token."""
    if len(tokens) != len(logprobs):
        raise ValueError(f"{len(tokens)} tokens but {len(logprobs)} logprobs")
    text = "".join(tokens)
    starts = [m.start() for m in re.finditer(re.escape(boundary), text)] if boundary else []
    steps: list[list[float]] = []
    current: list[float] = []
    offset, next_start = 0, 0
    for token, logprob in zip(tokens, logprobs, strict=True):
        end = offset + len(token)
        opens = next_start < len(starts) and starts[next_start] < end
        while next_start < len(starts) and starts[next_start] < end:
            next_start += 1  # every occurrence that begins in this token
        if opens and current:
            steps.append(current)
            current = []
        current.append(float(logprob))
        offset = end
    if current:
        steps.append(current)
    return steps


def step_confidences(steps: Sequence[Sequence[float]]) -> list[float]:
    """Each step's mean token probability."""
    return [sum(math.exp(lp) for lp in step) / len(step) for step in steps if step]


def weighted_confidence(confidences: Sequence[float], last: int = LAST_STEPS) -> float:
    """c: the last ``last`` confidences averaged with weights 1..k (the latest weighs k)."""
    tail = list(confidences)[-last:]
    if not tail:
        return EMPTY_CONFIDENCE
    weights = range(1, len(tail) + 1)
    return sum(w * c for w, c in zip(weights, tail, strict=True)) / sum(weights)


def gg_reward(correct: bool, confidence: float) -> float:
    """1 + c^4 for a right answer, 1 - 10 c^4 for a wrong one: confident mistakes cost the most."""
    return 1 + confidence**4 if correct else 1 - 10 * confidence**4


def completion_text(completion: Any) -> str:
    """TRL passes a completion as text or, for conversational data, as a list of messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    raise ValueError(f"a completion must be text or a list of messages, got {type(completion).__name__}")


@functools.lru_cache(maxsize=4096)
def is_correct(text: str, gold: str, dataset: str) -> bool:
    """Graded by ``evals``: the answer the text states, in the grading sandbox. Remembered for the last 4096
    (text, gold, dataset): GG's reward and a correctness reward beside it grade the same completions, and each
    grade is a round trip to the sandbox process."""
    return shared_sandbox().grade(GradingInput(dataset, extract_answer(text), text, gold)).correct


def correctness_reward(completions: list[Any], answer: list[str], dataset: list[str], **_: Any) -> list[float]:
    """1.0 for a right final answer, 0.0 otherwise (columns ``answer`` and ``dataset`` of the training data)."""
    return [float(is_correct(completion_text(c), g, d)) for c, g, d in zip(completions, answer, dataset, strict=True)]


def stated_answer_reward(completions: list[Any], **_: Any) -> list[float]:
    """Format: 1.0 when the completion states a final answer we can read ("The answer is x." or \\boxed{x})."""
    return [float(extract_answer(completion_text(c)) is not None) for c in completions]


TokenLogprobs = Callable[[list[Any], list[list[int]]], list[tuple[list[str], list[float]]]]
"""(prompts, completion token ids) -> per completion, its token texts and their logprobs under the policy."""


class ConfidenceReward:
    """GG's reward as a TRL reward function. TRL does not hand rewards the token probabilities, so this reads
    them from the policy (``token_logprobs``, bound to the trainer's model by ``trainers.gg_calibrate``)."""

    def __init__(self, token_logprobs: TokenLogprobs, boundary: str = DEFAULT_BOUNDARY) -> None:
        self.token_logprobs = token_logprobs
        self.boundary = boundary
        self.__name__ = "gg_confidence_reward"  # TRL logs each reward under its function's name
        self.last_confidences: list[float] = []

    def __call__(
        self, prompts: list[Any], completions: list[Any], completion_ids: list[list[int]], answer: list[str],
        dataset: list[str], **_: Any,
    ) -> list[float]:  # fmt: skip
        rewards, confidences = [], []
        scored = self.token_logprobs(prompts, completion_ids)
        for completion, (tokens, logprobs), gold, name in zip(completions, scored, answer, dataset, strict=True):
            c = weighted_confidence(step_confidences(split_steps(tokens, logprobs, self.boundary)))
            confidences.append(c)
            rewards.append(gg_reward(is_correct(completion_text(completion), gold, name), c))
        self.last_confidences = confidences
        return rewards
