"""The hf backend's per-row sampler on hand-made logits: each row keeps its own temperature, top_p and
seed, so requests with different settings can share one batch."""

from __future__ import annotations

import math

import pytest
import torch

from thoughtgraph.backends.hf import PerRowSampler, _batch_key, _row_seed
from thoughtgraph.backends.types import Request


def pick(sampler: PerRowSampler, scores: torch.Tensor) -> list[int]:
    out = sampler(None, scores.clone())
    assert torch.all((out == 0) | torch.isinf(out)) and torch.all((out == 0).sum(dim=1) == 1)  # one-hot
    return out.argmax(dim=1).tolist()


def test_greedy_rows_take_the_argmax_and_top_p_keeps_the_smallest_nucleus():
    scores = torch.tensor([[0.0, 3.0, 1.0], [math.log(0.6), math.log(0.3), math.log(0.1)]])
    # row 0: greedy -> token 1; row 1: top_p 0.5 -> only token 0 (0.6 >= 0.5) may be drawn
    for seed in range(20):
        assert pick(PerRowSampler([0.0, 1.0], [1.0, 0.5], [seed, seed], "cpu"), scores) == [1, 0]


def test_each_row_samples_from_its_own_temperature():
    # two tokens with logits 0 and log(3): p = 1/4, 3/4 at temperature 1; near 1/2 each at temperature 100
    scores = torch.tensor([[0.0, math.log(3.0)]] * 2)
    cold = hot = 0
    for seed in range(2000):
        low, high = pick(PerRowSampler([1.0, 100.0], [1.0, 1.0], [seed, seed + 10**6], "cpu"), scores)
        cold += low == 0
        hot += high == 0
    assert cold / 2000 == pytest.approx(0.25, abs=0.04)
    assert hot / 2000 == pytest.approx(0.5, abs=0.04)


def test_a_row_draws_the_same_tokens_whatever_else_is_in_the_batch():
    vocabulary = torch.randn(1, 50, generator=torch.Generator().manual_seed(0))
    alone = PerRowSampler([0.8], [0.9], [123], "cpu")
    together = PerRowSampler([0.3, 0.8, 1.5], [1.0, 0.9, 0.5], [9, 123, 77], "cpu")
    other = torch.randn(1, 50)
    for _ in range(30):  # the row's generator advances step by step, in both batches alike
        assert pick(alone, vocabulary)[0] == pick(together, torch.cat([other, vocabulary, other]))[1]


def test_rows_group_by_what_generate_cannot_vary():
    base = Request.chat(("user", "x"), max_tokens=8, temperature=0.7, top_p=0.9, seed=1)
    varied = Request.chat(("user", "y"), max_tokens=8, temperature=1.3, top_p=0.5, seed=2)
    assert _batch_key(base) == _batch_key(varied)
    assert _batch_key(base) != _batch_key(Request.chat(("user", "x"), max_tokens=9))
    assert _row_seed(base, 0) == _row_seed(base, 0) != _row_seed(base, 1)
