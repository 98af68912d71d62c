"""Backend benchmark on this machine's embedded model. Prints figures and the ratios the README quotes.

1. llamacpp: single-request decoding speed (tokens/s), with and without per-token logprobs.
2. hf: 8 concurrent requests through the coalescing layer (one padded batch) vs the same 8 one
   after another, in completion tokens/s.
3. llamacpp: share of prompt tokens served from the KV cache on a tree-shaped request pattern
   (one problem, a level of continuations, then continuations of each).

Usage: python bench/backends.py [--skip-hf]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would hide the
# `backends` package it measures.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).parent.resolve():
    sys.path.pop(0)

from thoughtgraph.backends import Request, UsageLedger, create_backend

PROBLEM = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May? Solve it step by step."
)
PROMPTS = [
    "Name three fruits.",
    "What is the capital of France?",
    "Describe the moon in one sentence.",
    "Count from one to five.",
    "Why is the sky blue?",
    "Give a synonym for happy.",
    "What do bees make?",
    "Name a large animal.",
]


async def decoding_speed(backend, *, logprobs: bool, tokens: int = 128) -> float:
    request = Request(prompt="Once upon a time, in a land far away,", max_tokens=tokens, logprobs=logprobs)
    await backend.generate_one(Request(prompt="warm up", max_tokens=4))
    started = time.perf_counter()
    result = await backend.generate_one(request)
    return result.usage.completion_tokens / (time.perf_counter() - started)


async def concurrent_vs_sequential(backend, max_tokens: int = 32) -> tuple[float, float]:
    requests = [Request.chat(("user", p), max_tokens=max_tokens) for p in PROMPTS]
    await backend.generate_one(requests[0])  # warm up
    with UsageLedger() as sequential:
        for request in requests:
            await backend.generate_one(request)
    with UsageLedger() as concurrent:
        await asyncio.gather(*(backend.generate_one(r) for r in requests))
    return (
        sequential.completion_tokens / sequential.wall_seconds,
        concurrent.completion_tokens / concurrent.wall_seconds,
    )


async def tree_prefix_share(backend, width: int = 4, depth: int = 3, step_tokens: int = 24) -> float:
    """Grow a tree of continuations breadth first and report the prompt share served from cache."""
    frontier = [PROBLEM]
    with UsageLedger() as ledger:
        for level in range(depth):
            children = []
            for prefix in frontier:
                requests = [
                    Request(prompt=prefix, max_tokens=step_tokens, temperature=0.8, seed=level * 100 + i)
                    for i in range(width if level == 0 else 2)
                ]
                for result in await backend.generate(requests):
                    children.append(prefix + result.text)
            frontier = children
    return ledger.cached_prompt_tokens / ledger.prompt_tokens


async def main(skip_hf: bool) -> dict:
    figures: dict = {}
    llama = create_backend("llamacpp:smollm2")
    figures["llamacpp_tokens_per_s"] = round(await decoding_speed(llama, logprobs=False), 1)
    figures["llamacpp_tokens_per_s_with_logprobs"] = round(await decoding_speed(llama, logprobs=True), 1)
    figures["logprobs_speed_ratio"] = round(
        figures["llamacpp_tokens_per_s_with_logprobs"] / figures["llamacpp_tokens_per_s"], 2
    )
    figures["tree_prompt_share_from_kv_cache"] = round(await tree_prefix_share(llama), 3)
    llama.close()
    if not skip_hf:
        hf = create_backend("hf:smollm2")
        sequential, concurrent = await concurrent_vs_sequential(hf)
        figures["hf_sequential_tokens_per_s"] = round(sequential, 1)
        figures["hf_8_concurrent_coalesced_tokens_per_s"] = round(concurrent, 1)
        figures["hf_coalescing_speedup"] = round(concurrent / sequential, 2)
        figures["hf_batch_sizes_seen"] = sorted(set(hf.batch_sizes))
        hf.close()
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-hf", action="store_true", help="skip the transformers part (needs torch)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.skip_hf)), indent=2))
