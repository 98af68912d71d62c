"""Eval-harness benchmark: problems per minute on GSM8K with the embedded model, concurrency 1 vs 4 vs 8,
and the share of run time spent outside model calls.

Usage: python bench/evals.py [--problems 20] [--max-tokens 128] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would hide `evals`.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).parent.resolve():
    sys.path.pop(0)

from thoughtgraph.backends import create_backend
from thoughtgraph.evals.runner import EvalConfig, run_eval


async def measure(problems: int, max_tokens: int, data_dir: str) -> dict:
    backend = create_backend("llamacpp:smollm2")
    figures = {}
    with tempfile.TemporaryDirectory() as out:
        for concurrency in (1, 4, 8):
            config = EvalConfig(
                dataset="gsm8k",
                limit=problems,
                data_dir=data_dir,
                out=out,
                run_name=f"c{concurrency}",
                concurrency=concurrency,
                method_options={"chain_tokens": max_tokens},
            )
            results = await run_eval(config, backend=backend, progress=False)
            wall = results["run_seconds_this_session"]
            figures[f"concurrency_{concurrency}"] = {
                "problems_per_minute": round(60 * problems / wall, 2),
                "run_seconds": wall,
                "completion_tokens": results["usage"]["total"]["completion_tokens"],
            }
            if concurrency == 1:  # calls do not overlap, so their latencies add up to the time inside them
                inside = results["usage"]["total"]["backend_seconds"]
                figures["share_of_time_outside_model_calls"] = round(1 - inside / wall, 4)
    base = figures["concurrency_1"]["problems_per_minute"]
    for concurrency in (4, 8):
        rate = figures[f"concurrency_{concurrency}"]["problems_per_minute"]
        figures[f"speedup_{concurrency}_vs_1"] = round(rate / base, 2)
    backend.close()
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.problems, args.max_tokens, args.data_dir)), indent=2))
