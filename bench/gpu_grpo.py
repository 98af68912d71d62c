"""A few GRPO steps of GG calibration on a GPU, when one is at hand (not run on the CPU development machine).

Usage: python bench/gpu_grpo.py --model runs/smollm2-hf [--steps 4] [--out runs/gpu_grpo]

Runs ``trainers.gg_calibrate`` with the paper's group size (8 generations) in bf16 on CUDA and prints the
seconds per step from its metrics. Exits with a message when no GPU is visible.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).parent.resolve():
    sys.path.pop(0)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--out", default="runs/gpu_grpo")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU visible: this check needs one")
    from trainers.gg_calibrate import main as train

    train(
        [
            "--config", "trainers/configs/gg_calibrate.yaml", "--model", args.model, "--output_dir", args.out,
            "--max_steps", str(args.steps), "--bf16", "true", "--per_device_train_batch_size", "8",
            "--max_completion_length", "256", "--limit", "64", "--save_steps", str(args.steps),
        ]
    )  # fmt: skip
    rows = [json.loads(line) for line in (Path(args.out) / "metrics.jsonl").read_text().splitlines()]
    times = [r["step_time"] for r in rows if "step_time" in r]
    print(json.dumps({"gpu": torch.cuda.get_device_name(0), "steps": len(times), "seconds_per_step": times}))


if __name__ == "__main__":
    main()
