"""Method benchmark: framework overhead, concurrency, and cost per method.

1. Overhead: thoughts per second per method on the ScriptedBackend test double at zero latency
   (what the runtime itself costs), and the share of wall time outside backend calls on a real
   embedded-model run (target: under 5%).
2. Concurrency: wall time of BoT and GG on the batching hf backend with concurrent batches
   (max_batch 16) against one request at a time (max_batch 1), as a ratio.
3. Cost: calls, prompt and completion tokens per problem for every method on the same GSM8K
   problems with the embedded model and each method's tiny preset (MethodSpec.tiny), so methods compare on cost.

Usage: python bench/methods.py [--problems 20] [--part all|overhead|concurrency|cost] [--skip-hf]
                              [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path; keep the packages it measures visible.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).parent.resolve():
    sys.path.pop(0)

from thoughtgraph.backends import Request, UsageLedger, create_backend
from thoughtgraph.backends.scripted import ScriptedBackend, ScriptRule
from thoughtgraph.reasoning import METHODS, solve_async

TINY = {name: spec.tiny for name, spec in METHODS.items()}

ANALYSIS = json.dumps({"bad_steps": [1], "analysis": "step 1 is off", "advice": "recheck"})


def scripted() -> ScriptedBackend:
    return ScriptedBackend(
        [
            ScriptRule("Write step [1-3]\\.", ["Multiply the numbers.", "Add them up."], cycle=True),
            ScriptRule("Write step", ["The answer is 12."]),
            ScriptRule("You check", [ANALYSIS]),
            ScriptRule("You grade", ["0.7", "0.4"], cycle=True),
        ],
        default="3 * 4 = 12. The answer is 12.",
    )


async def overhead() -> dict:
    rates = {}
    for method, config in TINY.items():
        started, thoughts = time.perf_counter(), 0
        while time.perf_counter() - started < 1.0:
            solution = await solve_async("What is 3 * 4?", method, scripted(), seed=thoughts, **config)
            thoughts += len(solution.graph)
        rates[method] = round(thoughts / (time.perf_counter() - started))
    return rates


async def real_run_outside_share(question: str) -> dict:
    backend = create_backend("llamacpp:smollm2")
    shares = {}
    for method in ("bot", "tr", "gg"):
        solution = await solve_async(question, method, backend, **TINY[method])
        usage = solution.usage
        shares[method] = round(1 - usage["backend_seconds"] / usage["wall_seconds"], 4)
    backend.close()
    return shares


async def concurrency(question: str) -> dict:
    ratios = {}
    for method in ("bot", "gg"):
        times = {}
        for max_batch in (1, 16):
            backend = create_backend("hf:smollm2", max_batch=max_batch)
            await backend.generate_one(Request(prompt="warm up", max_tokens=2))
            started = time.perf_counter()
            await solve_async(question, method, backend, **TINY[method])
            times[max_batch] = time.perf_counter() - started
            backend.close()
        ratios[method] = {
            "seconds_one_at_a_time": round(times[1], 2),
            "seconds_batched": round(times[16], 2),
            "speedup": round(times[1] / times[16], 2),
        }
    return ratios


async def cost(questions: list[str]) -> dict:
    backend = create_backend("llamacpp:smollm2")
    table = {}
    for method, config in TINY.items():
        with UsageLedger() as ledger:
            for question in questions:
                await solve_async(question, method, backend, **config)
        n = len(questions)
        table[method] = {
            "calls": round(ledger.calls / n, 2),
            "prompt_tokens": round(ledger.prompt_tokens / n),
            "completion_tokens": round(ledger.completion_tokens / n),
            "seconds": round(ledger.wall_seconds / n, 2),
        }
    backend.close()
    return table


async def main(args: argparse.Namespace) -> dict:
    with (Path(args.data_dir) / "gsm8k" / "test.jsonl").open() as handle:
        questions = [json.loads(line)["question"] for _, line in zip(range(args.problems), handle, strict=False)]
    figures: dict = {}
    if args.part in ("all", "overhead"):
        figures["scripted_thoughts_per_second"] = await overhead()
        figures["real_run_share_outside_backend_calls"] = await real_run_outside_share(questions[0])
    if args.part in ("all", "concurrency") and not args.skip_hf:
        figures["hf_concurrency"] = await concurrency(questions[0])
    if args.part in ("all", "cost"):
        figures[f"cost_per_problem_{len(questions)}_gsm8k"] = await cost(questions)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=20)
    parser.add_argument("--skip-hf", action="store_true")
    parser.add_argument("--part", choices=["all", "overhead", "concurrency", "cost"], default="all")
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
