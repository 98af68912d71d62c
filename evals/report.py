"""Summaries of a run's samples: accuracy with a 95% interval, counts, usage, breakdowns."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

Z95 = 1.959963984540054
USAGE_KEYS = (
    "calls",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cache_hits",
    "backend_seconds",
    "wall_seconds",
)


def wilson_interval(successes: int, total: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval: sensible at 0% and 100% and for small samples, unlike p ± z·se."""
    if total == 0:
        return (0.0, 0.0)
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))  # rounding never leaves p out


def accuracy(samples: list[dict[str, Any]], key: str = "correct") -> dict[str, Any]:
    graded = [s for s in samples if s.get(key) is not None or s["status"] == "failed"]
    solved = sum(1 for s in graded if s.get(key))
    low, high = wilson_interval(solved, len(graded))
    return {"value": solved / len(graded) if graded else 0.0, "ci95": [low, high], "n": len(graded)}


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Failed problems count as not solved in every accuracy (the denominator is all problems)."""
    failed = sum(1 for s in samples if s["status"] == "failed")
    solved = sum(1 for s in samples if s.get("correct"))
    totals = {key: sum(s.get("usage", {}).get(key, 0) for s in samples) for key in USAGE_KEYS}
    summary: dict[str, Any] = {
        "n_samples": len(samples),
        "counts": {"solved": solved, "wrong": len(samples) - solved - failed, "failed": failed},
        "ungradable": sum(1 for s in samples if s.get("ungradable")),
        "accuracy": accuracy(samples),
        "usage": {
            "total": totals,
            "per_problem": {k: (v / len(samples) if samples else 0.0) for k, v in totals.items()},
        },
        "parse_failures": sum(s.get("usage", {}).get("events", {}).get("parse_failure", 0) for s in samples),
        "answer_asked_separately": sum(1 for s in samples if s.get("usage", {}).get("events", {}).get("answer_asked")),
        "chains_cut_at_repeat": sum(1 for s in samples if s.get("usage", {}).get("events", {}).get("chain_repeated")),
    }
    if any(s.get("strict") is not None for s in samples):
        summary["accuracy_strict"] = accuracy(samples, "strict")
        summary["accuracy_flexible"] = accuracy(samples, "flexible")
    for facet in ("level", "subject"):
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for s in samples:
            value = s.get("metadata", {}).get(facet)
            if value is not None:
                groups[str(value)].append(s)
        if groups:
            summary.setdefault("breakdown", {})[facet] = {k: accuracy(v) for k, v in sorted(groups.items())}
    return summary
