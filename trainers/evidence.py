"""Whether a training run moved its metric, with percentile-bootstrap intervals: of one statistic over its samples
(ECE before and after, each on its own replies) and of a paired difference (the same held-out problems before
and after, resampled together). Seeded, so a recipe's figures repeat."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

RESAMPLES = 2000
LEVEL = 0.95


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """The value at ``share`` of a sorted list, interpolating linearly between neighbours (numpy's default)."""
    if not sorted_values:
        raise ValueError("no values")
    position = share * (len(sorted_values) - 1)
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def bootstrap_interval(
    samples: Sequence[Any],
    statistic: Callable[[list[Any]], float],
    *,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> tuple[float, float]:
    """The central ``level`` interval of ``statistic`` over ``resamples`` resamples with replacement."""
    if not samples:
        raise ValueError("a bootstrap needs at least one sample")
    rng = random.Random(seed)
    items = list(samples)
    values = sorted(statistic(rng.choices(items, k=len(items))) for _ in range(resamples))
    tail = (1 - level) / 2
    return percentile(values, tail), percentile(values, 1 - tail)


def paired_difference(
    before: Mapping[str, float], after: Mapping[str, float], *, resamples: int = RESAMPLES, seed: int = 0
) -> dict[str, float]:
    """Mean of after - before over the problems both measured, and its paired bootstrap interval."""
    shared = sorted(set(before) & set(after))
    if not shared:
        raise ValueError("before and after share no problem")
    differences = [after[key] - before[key] for key in shared]

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    low, high = bootstrap_interval(differences, mean, resamples=resamples, seed=seed)
    return {"difference": mean(differences), "low": low, "high": high, "pairs": len(shared)}
