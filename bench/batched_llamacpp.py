"""The batched llama.cpp engine against the one-sequence engine, on the embedded model, in one run.

Usage: python bench/batched_llamacpp.py [--problems 50] [--sc-problems 5] [--data-dir ../shared/data] [--out F]

Figures (each a ratio of two measurements taken here, one after the other):
- the engine's ceiling: ``llama_decode`` alone, tokens/s with 8 rows per call over 1 row per call (same model,
  threads and context as the engine, no sampling or Python bookkeeping), and the batched engine's own 8-vs-1
  ratio as a share of it;
- aggregate decode tokens/s, 8 concurrent sequences vs 1, on the batched engine (and 8 on the deterministic one);
- ``sc`` with 8 samples per problem, seconds per problem, one-sequence / batched;
- ``evals`` with concurrency 8 on GSM8K, seconds per problem, one-sequence / batched;
- share of prompt tokens served from the KV cache on small BoT and TR runs, both engines;
- share of wall time outside backend calls (evals at concurrency 1 on the batched engine).
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

from thoughtgraph.backends import Request, UsageLedger
from thoughtgraph.backends.llamacpp import LlamaCppBackend
from thoughtgraph.evals.datasets import load_dataset
from thoughtgraph.evals.runner import EvalConfig, run_eval
from thoughtgraph.reasoning import METHODS, solve_async

ENGINES = {"batched": {}, "one_sequence": {"deterministic": True}}
"""The deterministic engine (one slot, aligned prompt blocks) is named one_sequence in the figures' keys."""


def decode_ceiling(backend: LlamaCppBackend, rows: int, steps: int = 128, *, reversed_rows: bool = False) -> float:
    """Tokens/s of bare ``llama_decode`` calls of ``rows`` rows (one new token per sequence, logits for each),
    in a context made like the engine's: the most any engine on this model, threads and context can decode.
    ``reversed_rows`` puts the rows in decreasing sequence-id order, which llama.cpp decodes one sub-batch per
    row (``split_equal`` joins only consecutive, increasing ids): what the engine did before it ordered rows."""
    import llama_cpp
    from llama_cpp import _internals

    engine = backend.engine
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = engine.n_ctx * engine.slots
    params.n_batch = params.n_ubatch = engine.chunk_tokens + engine.slots
    params.n_seq_max = engine.slots
    params.kv_unified = False
    params.n_threads = params.n_threads_batch = backend._llm.n_threads
    context = _internals.LlamaContext(model=backend._llm._model, params=params, verbose=False)
    batch = _internals.LlamaBatch(n_tokens=engine.chunk_tokens + engine.slots, embd=0, n_seq_max=1, verbose=False)
    prompt = backend._llm.tokenize(b"Tell a story about the number seven.", add_bos=True, special=False)
    try:

        def decode(items: list[tuple[int, int, int]]) -> None:  # (token, position, sequence)
            raw = batch.batch
            raw.n_tokens = 0
            for token, position, sequence in items:
                i = raw.n_tokens
                raw.token[i], raw.pos[i], raw.n_seq_id[i], raw.seq_id[i][0], raw.logits[i] = (
                    token,
                    position,
                    1,
                    sequence,
                    True,
                )
                raw.n_tokens = i + 1
            if llama_cpp.llama_decode(context.ctx, raw) != 0:
                raise RuntimeError("llama_decode failed")

        for sequence in range(rows):
            decode([(token, position, sequence) for position, token in enumerate(prompt)])
        started = time.perf_counter()
        order = range(rows - 1, -1, -1) if reversed_rows else range(rows)
        for step in range(steps):
            decode([(prompt[step % len(prompt)], len(prompt) + step, sequence) for sequence in order])
        return rows * steps / (time.perf_counter() - started)
    finally:
        batch.close()
        context.close()


async def decode_throughput(backends: dict) -> dict:
    def story(i: int) -> Request:
        return Request.chat(("user", f"Tell a story about the number {i}."), max_tokens=128, min_tokens=128,
                            temperature=0.7, seed=i)  # fmt: skip

    async def rate(backend: LlamaCppBackend, count: int) -> float:
        started = time.perf_counter()
        results = await backend.generate([story(i) for i in range(count)])
        return sum(r.usage.completion_tokens for r in results) / (time.perf_counter() - started)

    ceiling_one, ceiling_eight = decode_ceiling(backends["batched"], 1), decode_ceiling(backends["batched"], 8)
    eight_reversed = decode_ceiling(backends["batched"], 8, reversed_rows=True)
    one, eight = await rate(backends["batched"], 1), await rate(backends["batched"], 8)
    serial_eight = await rate(backends["one_sequence"], 8)
    rates = {"ceiling_1": ceiling_one, "ceiling_8": ceiling_eight, "ceiling_8_rows_reversed": eight_reversed,
             "batched_1": one, "batched_8": eight, "deterministic_8": serial_eight}  # fmt: skip
    ceiling, engine = ceiling_eight / ceiling_one, eight / one
    return {
        "tokens_per_second": {k: round(v, 1) for k, v in rates.items()},
        "ceiling_8_vs_1": round(ceiling, 2),
        "ceiling_8_in_stream_order_vs_reversed": round(ceiling_eight / eight_reversed, 2),
        "batched_8_vs_1": round(engine, 2),
        "batched_share_of_ceiling": round(engine / ceiling, 3),
        "batched_8_share_of_ceiling_8": round(eight / ceiling_eight, 3),
        "batched_1_share_of_ceiling_1": round(one / ceiling_one, 3),
        "batched_8_vs_deterministic_8": round(eight / serial_eight, 2),
    }


async def self_consistency(backends: dict, questions: list[str]) -> dict:
    seconds = {}
    for name, backend in backends.items():
        started = time.perf_counter()
        for question in questions:
            await solve_async(question, "sc", backend, samples=8, chain_tokens=256)
        seconds[name] = (time.perf_counter() - started) / len(questions)
    return {
        "seconds_per_problem": {k: round(v, 2) for k, v in seconds.items()},
        "speedup": round(seconds["one_sequence"] / seconds["batched"], 2),
    }


async def evals_run(backends: dict, problems: int, data_dir: str) -> dict:
    seconds, figures = {}, {}
    with tempfile.TemporaryDirectory() as out:
        for name, backend in backends.items():
            config = EvalConfig(dataset="gsm8k", limit=problems, data_dir=data_dir, out=out, run_name=name,
                                concurrency=8, method_options={"chain_tokens": 256})  # fmt: skip
            results = await run_eval(config, backend=backend, progress=False)
            seconds[name] = results["run_seconds_this_session"] / problems
            figures[f"{name}_accuracy"] = results.get("accuracy")
        config = EvalConfig(dataset="gsm8k", limit=min(problems, 10), data_dir=data_dir, out=out, run_name="share",
                            concurrency=1, method_options={"chain_tokens": 256})  # fmt: skip
        results = await run_eval(config, backend=backends["batched"], progress=False)
        inside = results["usage"]["total"]["backend_seconds"]  # calls do not overlap at concurrency 1
        figures["share_of_time_outside_backend_calls"] = round(1 - inside / results["run_seconds_this_session"], 4)
    return {
        "seconds_per_problem": {k: round(v, 2) for k, v in seconds.items()},
        "speedup": round(seconds["one_sequence"] / seconds["batched"], 2),
        **figures,
    }


async def cache_share(backends: dict, question: str) -> dict:
    small = {method: METHODS[method].tiny for method in ("bot", "tr")}
    shares = {}
    for name, backend in backends.items():
        for method, config in small.items():
            with UsageLedger() as ledger:
                await solve_async(question, method, backend, **config)
            shares[f"{method}_{name}"] = round(ledger.cached_prompt_tokens / ledger.prompt_tokens, 3)
    return shares


async def main(args: argparse.Namespace) -> dict:
    backends = {name: LlamaCppBackend("smollm2", **options) for name, options in ENGINES.items()}
    questions = [p.prompt for p in load_dataset("gsm8k", "test", data_dir=args.data_dir).problems[: args.sc_problems]]
    try:
        for backend in backends.values():  # load and warm both
            await backend.generate_one(Request(prompt="warm up", max_tokens=2))
        figures = {"threads": backends["batched"]._llm.n_threads, "slots": backends["batched"].slots}
        sections = {
            "decode": lambda: decode_throughput(backends),
            "sc_8_samples": lambda: self_consistency(backends, questions),
            "prompt_tokens_from_cache": lambda: cache_share(backends, questions[0]),
            "evals_concurrency_8": lambda: evals_run(backends, args.problems, args.data_dir),
        }
        for name, section in sections.items():
            if args.only and name not in args.only:
                continue
            figures[name] = await section()
            print(name, json.dumps(figures[name]), flush=True)  # each as it lands
    finally:
        for backend in backends.values():
            backend.close()
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=50)
    parser.add_argument("--sc-problems", type=int, default=5)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--only", nargs="*", help="run only these sections (decode, sc_8_samples, ...)")
    args = parser.parse_args()
    figures = asyncio.run(main(args))
    text = json.dumps(figures, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
