"""GG calibration on a GPU, when one is at hand: a few GRPO steps with the paper's group size, then the
adapter in the ``hf`` backend (ECE before and after, ``gg`` with the adapter).

Usage::

    python bench/gpu_grpo.py --model runs/smollm2-hf --dataset math --steps 8 --out runs/gpu_grpo

``--model`` is an HF folder or a ``.gguf`` file (exported to ``OUT/model`` first). Training runs
``trainers.gg_calibrate`` with its paper config (8 generations per prompt, LoRA r=128, alpha=128, lr 2e-6) in
bf16 on CUDA; ECE is measured by ``trainers.calibration`` on the first ``--ece-limit`` test problems of the same
dataset, before and after. Prints one JSON line (also written to ``OUT/summary.json``): seconds per optimizer
step, peak GPU memory, rollout tokens per second, rewards, ECE before/after. Exits with a message when no GPU
is visible; ``--cpu-dry-run`` runs the same path on the CPU at toy sizes, to check the script itself.
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


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="HF model folder or .gguf file")
    parser.add_argument("--dataset", default="gsm8k")
    parser.add_argument("--split", default="train")
    parser.add_argument("--limit", type=int, default=64, help="training problems")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--completion-tokens", type=int, default=256)
    parser.add_argument("--ece-limit", type=int, default=48, help="test problems for ECE; 0 skips it")
    parser.add_argument("--out", type=Path, default=Path("runs/gpu_grpo"))
    parser.add_argument("--cpu-dry-run", action="store_true", help="toy sizes on the CPU, to test this script")
    return parser.parse_args(argv)


def ece(spec: str, dataset: str, limit: int, out: Path, max_tokens: int) -> dict:
    from thoughtgraph.backends import create_backend
    from thoughtgraph.trainers.calibration import measure

    started = time.perf_counter()
    summary = asyncio.run(measure(create_backend(spec), dataset, limit, out, max_tokens=max_tokens))
    keys = ("samples", "empty_replies", "ece", "accuracy", "mean_confidence")
    return {**{k: summary[k] for k in keys}, "seconds": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> None:
    import torch

    args = parse(argv)
    if not torch.cuda.is_available() and not args.cpu_dry_run:
        sys.exit("no CUDA GPU visible: this check needs one (or --cpu-dry-run to test the script)")
    from thoughtgraph.backends.hf import export_hf_folder
    from thoughtgraph.trainers.gg_calibrate import main as train

    args.out.mkdir(parents=True, exist_ok=True)
    model = args.model
    if model.endswith(".gguf"):
        model = str(export_hf_folder(model, args.out / "model"))
    generations, batch, tokens = (2, 2, 16) if args.cpu_dry_run else (8, 8, args.completion_tokens)
    ece_tokens = 16 if args.cpu_dry_run else 256
    summary: dict = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (dry run)"}
    if args.ece_limit:
        summary["ece_before"] = ece(f"hf:{model}", args.dataset, args.ece_limit, args.out / "ece-before", ece_tokens)
    run = args.out / "gg"
    toy = ["--bf16", "false", "--use_cpu", "true", "--lora_r", "8", "--lora_alpha", "16"]
    overrides = toy if args.cpu_dry_run else ["--bf16", "true"]
    started = time.perf_counter()
    train(
        [
            "--config", "trainers/configs/gg_calibrate.yaml", "--model", model, "--output_dir", str(run),
            "--dataset", args.dataset, "--split", args.split, "--limit", str(args.limit),
            "--max_steps", str(args.steps), "--save_steps", str(args.steps), "--num_generations", str(generations),
            "--per_device_train_batch_size", str(batch), "--max_completion_length", str(tokens), *overrides,
        ]
    )  # fmt: skip
    summary["train_seconds"] = round(time.perf_counter() - started, 1)
    if torch.cuda.is_available():
        summary["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = [r for r in rows if "step_time" in r]
    summary["steps"] = len(steps)
    summary["seconds_per_step"] = [round(r["step_time"], 2) for r in steps]
    summary["mean_completion_tokens"] = [round(r.get("completions/mean_length", 0), 1) for r in steps]
    summary["rollout_tokens_per_second"] = [
        round(r.get("completions/mean_length", 0) * batch / r["step_time"], 1) for r in steps
    ]  # an upper bound: step_time includes the backward pass
    summary["reward"] = [round(r["reward"], 3) for r in steps if "reward" in r]
    adapter_spec = f"hf:{model}#adapter={run}"
    if args.ece_limit:
        summary["ece_after"] = ece(adapter_spec, args.dataset, args.ece_limit, args.out / "ece-after", ece_tokens)
    from thoughtgraph.reasoning import solve

    solution = solve(
        "Tom has 3 apples and buys 4 more. How many apples does he have?", method="gg", backend=adapter_spec,
        paths=2, candidates=2, max_steps=3, step_tokens=48, max_calls=16,
    )  # fmt: skip
    summary["gg_with_adapter"] = {"answer": solution.answer, "calls": solution.usage.get("calls")}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
