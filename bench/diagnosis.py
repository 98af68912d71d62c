"""Diagnosis quality and cost on the held-out split of the shipped corpus.

Usage: python bench/diagnosis.py [--backend llamacpp:smollm2] [--limit N] [--skip-model]

1. Top-1 / top-3 category accuracy and component match of the variants full, retrieval-only and no-tools,
   without a model (mechanics only) and with the given backend (the agents on a real model).
2. Verification wall time of full against sequential on the same incidents and steps, as a ratio: with the
   in-process inspectors as they are (milliseconds each), and with a simulated 0.2 s fetch before every step
   (what a query to a remote log or metrics store costs; the sleep is the simulation, stated as such).
3. Diagnosis latency per incident with the model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).parent.resolve():
    sys.path.pop(0)

from thoughtgraph.agents.diagnosis import checks
from thoughtgraph.agents.diagnosis.incidents import HELDOUT
from thoughtgraph.evals.diagnosis import evaluate

FETCH_SECONDS = 0.2


def with_fetch_latency() -> None:
    """Every check first waits FETCH_SECONDS, as if it fetched its artifact from a remote store."""
    for name, check in list(checks.CHECKS.items()):

        def slow(arguments, artifacts, run=check.run):
            time.sleep(FETCH_SECONDS)
            return run(arguments, artifacts)

        checks.CHECKS[name] = type(check)(**{**check.__dict__, "run": slow})


async def variant(name: str, backend: str | None, limit: int | None) -> dict:
    with tempfile.TemporaryDirectory() as out:
        summary = await evaluate(HELDOUT, out, backend=backend, variant=name, limit=limit)
    keep = ("top1", "top3", "component", "mean_tool_calls", "mean_iterations", "mean_seconds", "parse_failures")
    result = {k: summary[k] for k in keep}
    result["verification_seconds"] = round(summary["verification_seconds"], 4)
    result["incidents"] = summary["incidents"]
    for key in ("top1", "top3", "component"):
        result[key] = {"rate": round(result[key]["rate"], 3), "ci95": [round(x, 3) for x in result[key]["ci95"]]}
    return result


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="llamacpp:smollm2")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--skip-model", action="store_true")
    args = parser.parse_args()
    report: dict = {"no_model": {}, "model": {}}
    for name in ("full", "retrieval-only", "no-tools", "sequential"):
        report["no_model"][name] = await variant(name, None, args.limit)
    full, sequential = report["no_model"]["full"], report["no_model"]["sequential"]
    report["verification_full_over_sequential_in_process"] = round(
        full["verification_seconds"] / sequential["verification_seconds"], 3
    )
    with_fetch_latency()
    slow_full = await variant("full", None, args.limit)
    slow_sequential = await variant("sequential", None, args.limit)
    report["verification_full_over_sequential_with_0.2s_fetch"] = round(
        slow_full["verification_seconds"] / slow_sequential["verification_seconds"], 3
    )
    report["verification_seconds_with_0.2s_fetch"] = {
        "full": slow_full["verification_seconds"], "sequential": slow_sequential["verification_seconds"]
    }  # fmt: skip
    print(json.dumps(report, indent=1), flush=True)
    if not args.skip_model:
        importlib_checks = __import__("importlib").reload(checks)  # the real checks again, no simulated latency
        assert importlib_checks.CHECKS
        for name in ("full", "retrieval-only", "no-tools"):
            report["model"][name] = await variant(name, args.backend, args.limit)
            print(name, json.dumps(report["model"][name]), flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
