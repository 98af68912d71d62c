"""Pisces against synchronous FedAvg and plain asynchronous FL (FedBuff) over many seeds.

Usage: python bench/pisces.py [--seeds 20]

Each seed draws new client speeds and data shards; the figure is the ratio of times to the target
accuracy (other scheme / Pisces, > 1: Pisces is faster), reported as the median with the
interquartile range and the extremes, and the number of seeds Pisces wins.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).parent.resolve():
    sys.path.pop(0)

import numpy as np

from thoughtgraph.agents.tools.registry import call_tool


def summary(other: np.ndarray, pisces: np.ndarray) -> dict:
    reached = np.isfinite(other) & np.isfinite(pisces)
    ratios = np.where(reached, other / np.where(np.isfinite(pisces), pisces, 1.0), np.nan)
    finite = ratios[reached]
    return {
        "median": round(float(np.median(finite)), 2),
        "iqr": [round(float(q), 2) for q in np.percentile(finite, [25, 75])],
        "min": round(float(finite.min()), 2),
        "max": round(float(finite.max()), 2),
        "pisces_faster_in": f"{int((finite > 1).sum() + (np.isfinite(pisces) & ~np.isfinite(other)).sum())}"
        f"/{len(ratios)}",
        "pisces_never_reached": int((~np.isfinite(pisces)).sum()),
        "other_never_reached": int((~np.isfinite(other)).sum()),
    }


def main(seeds: int) -> dict:
    times = {"sync": [], "async": [], "pisces": []}
    staleness, async_staleness = [], []
    for seed in range(seeds):
        result = call_tool("pisces_simulate", {"seed": seed})
        for mode, seconds in result["time_to_target"].items():
            times[mode].append(np.inf if seconds is None else seconds)
        staleness.append(result["max_staleness"]["pisces"])
        async_staleness.append(result["max_staleness"]["async"])
    pisces = np.array(times["pisces"])
    return {
        "seeds": seeds,
        "sync / pisces": summary(np.array(times["sync"]), pisces),
        "async / pisces": summary(np.array(times["async"]), pisces),
        "largest staleness, pisces (bound 6)": max(staleness),
        "largest staleness, plain async": max(async_staleness),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=20)
    print(json.dumps(main(parser.parse_args().seeds), indent=2))
