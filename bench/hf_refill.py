"""The hf backend's continuous refill against its coalesced ``generate`` batches, on the embedded model, in
one run.

Usage: python bench/hf_refill.py [--data-dir ../shared/data]

Figures (seconds, and the ratio coalesced / refill):
- 8 requests at once whose budgets differ (8 to 64 tokens, each forced to its budget by min_tokens): with
  ``generate`` every row runs until the longest ends; with refill a row leaves when it is done;
- the same 8 arriving 0.3 s apart: ``generate`` batches only what arrived together, refill adds each
  newcomer to the running batch;
- a small BoT run (its trees, each with its own temperature, in flight together).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).parent.resolve():
    sys.path.pop(0)

from thoughtgraph.backends import Request
from thoughtgraph.backends.hf import HFBackend
from thoughtgraph.evals.datasets import load_dataset
from thoughtgraph.reasoning import solve_async

BUDGETS = [8, 64, 16, 48, 24, 40, 32, 56]


def requests() -> list[Request]:
    return [
        Request.chat(("user", f"Tell me about the number {i}."), max_tokens=budget, min_tokens=budget,
                     temperature=0.7, seed=i)
        for i, budget in enumerate(BUDGETS)
    ]  # fmt: skip


async def at_once(backend: HFBackend) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(backend.generate_one(r) for r in requests()))
    return time.perf_counter() - started


async def staggered(backend: HFBackend) -> float:
    async def later(request: Request, delay: float) -> None:
        await asyncio.sleep(delay)
        await backend.generate_one(request)

    started = time.perf_counter()
    await asyncio.gather(*(later(r, 0.3 * i) for i, r in enumerate(requests())))
    return time.perf_counter() - started


async def bot(backend: HFBackend, question: str) -> float:
    started = time.perf_counter()
    await solve_async(question, "bot", backend, iterations=2, trees=4, max_expansions=2, step_tokens=48, seed=0)
    return time.perf_counter() - started


async def main(data_dir: str) -> dict:
    question = load_dataset("gsm8k", "test", data_dir=data_dir).problems[0].prompt
    figures: dict = {}
    for name, refill in (("coalesced", False), ("refill", True)):
        backend = HFBackend("smollm2", refill=refill)
        await backend.generate_one(Request(prompt="warm up", max_tokens=2))
        for workload, run in (("at_once", at_once), ("staggered", staggered)):
            figures.setdefault(workload, {})[name] = round(await run(backend), 2)
        figures.setdefault("bot", {})[name] = round(await bot(backend, question), 2)
        backend.close()
    for workload in figures.values():
        workload["coalesced_over_refill"] = round(workload["coalesced"] / workload["refill"], 2)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    print(json.dumps(asyncio.run(main(parser.parse_args().data_dir)), indent=1))
