"""Choice constraints for transformers models: the reply is one of the request's options, picked by likelihood.

Each option is scored by the sum of its tokens' log-probabilities after the prompt (as lm-evaluation-harness scores
multiple choice); the prompt runs once and the options continue from its key-value cache. At temperature 0 the reply is
the best-scored option (the first, on a tie); above it, the option is drawn from the softmax of the scores at
that temperature, cut by ``top_p``, with the row's own seeded generator. This differs from llama.cpp's grammar
(``backends/grammar.py``), which decodes the options token by token and keeps the greedy path: a long option
whose first token is likely can win there and lose here, where every option is scored whole. No end-of-text
token is scored and ``max_tokens`` does not shorten an option.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from thoughtgraph.backends.hf_engine import sample_token
from thoughtgraph.backends.types import Choice, Request


def option_logprobs(
    model: Any, prompt: list[int], options: list[list[int]], pad: int, device: str
) -> list[list[float]]:
    """The log-probability of each token of each option after ``prompt``: the prompt runs once, then every option
    continues from its cached keys and values in one right-padded batch."""
    import torch

    with torch.inference_mode():
        first = model(input_ids=torch.tensor([prompt], device=device), use_cache=True)
        opening = torch.log_softmax(first.logits[0, -1].float(), dim=-1)  # predicts each option's first token
        longest = max(len(option) for option in options)
        scores = [[float(opening[option[0]])] for option in options]
        if longest > 1:
            cache = first.past_key_values
            cache.batch_repeat_interleave(len(options))
            ids = torch.tensor([option + [pad] * (longest - len(option)) for option in options], device=device)
            mask = torch.tensor(
                [[1] * len(prompt) + [1] * len(option) + [0] * (longest - len(option)) for option in options],
                device=device,
            )
            logits = model(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=True).logits
            following = torch.log_softmax(logits.float(), dim=-1)  # position k predicts the option's token k + 1
            for row, option in enumerate(options):
                scores[row] += [float(following[row, k, token]) for k, token in enumerate(option[1:])]
    return scores


def pick_options(request: Request, scores: list[float], seeds: list[int]) -> list[int]:
    """The chosen option's index for each of the request's ``n`` rows (argmax at temperature 0)."""
    import torch

    values = torch.tensor(scores)
    picks = []
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        picks.append(sample_token(values, request.temperature, request.top_p, generator))
    return picks


def choice_result_parts(
    request: Request, tokens_of: Callable[[str], list[int]], scorer: Callable[[list[list[int]]], list[list[float]]],
    seeds: list[int], piece: Callable[[int], str],
) -> list[Choice]:  # fmt: skip
    """The request's ``n`` choices: every option scored by ``scorer`` on its tokens, one picked per row."""
    assert request.constraint is not None and request.constraint.choices is not None
    options = list(request.constraint.choices)
    token_ids = [tokens_of(option) for option in options]
    per_token = scorer(token_ids)
    picks = pick_options(request, [sum(values) for values in per_token], seeds)
    return [
        Choice(
            text=options[index],
            finish_reason="stop",
            completion_tokens=len(token_ids[index]),
            tokens=[piece(token) for token in token_ids[index]] if request.logprobs else None,
            logprobs=per_token[index] if request.logprobs else None,
        )
        for index in picks
    ]
