"""Calibration of final-step confidence: expected calibration error (ECE, equal-width bins) and a reliability
diagram, before and after GG's confidence training, one command each::

    python -m thoughtgraph.trainers.calibration --backend llamacpp:smollm2 --dataset gsm8k --limit 50 \\
        --out runs/cal-before
    python -m thoughtgraph.trainers.calibration --backend "hf:runs/smollm2-hf#adapter=runs/gg/adapter" \\
        --dataset gsm8k ...

Each problem is solved once with greedy chain-of-thought (``prompts/cot/solve``) asking for token logprobs; the
confidence is the mean token probability of the reply's final step (steps split as in ``trainers.rewards``),
and correctness comes from the ``evals`` graders. Writes ``samples.jsonl``, ``calibration.json`` and
``reliability.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from thoughtgraph.trainers.rewards import DEFAULT_BOUNDARY, is_correct, split_steps, step_confidences

BINS = 10


def bin_index(confidence: float, bins: int = BINS) -> int:
    """Equal-width bins [0, 1/b), [1/b, 2/b), ..., [(b-1)/b, 1]: 1.0 falls in the last bin."""
    if not 0.0 <= confidence <= 1.0:
        raise ValueError(f"a confidence must be in [0, 1], got {confidence}")
    return min(int(confidence * bins), bins - 1)


def reliability_bins(confidences: Sequence[float], correct: Sequence[bool], bins: int = BINS) -> list[dict[str, Any]]:
    """Per bin: its range, how many samples fell in it, their mean confidence and their accuracy."""
    if len(confidences) != len(correct):
        raise ValueError(f"{len(confidences)} confidences but {len(correct)} correctness values")
    table = [
        {"low": b / bins, "high": (b + 1) / bins, "count": 0, "confidence": 0.0, "accuracy": 0.0} for b in range(bins)
    ]
    for confidence, right in zip(confidences, correct, strict=True):
        row = table[bin_index(confidence, bins)]
        row["count"] += 1
        row["confidence"] += confidence
        row["accuracy"] += float(right)
    for row in table:
        if row["count"]:
            row["confidence"] /= row["count"]
            row["accuracy"] /= row["count"]
    return table


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = BINS) -> float:
    """ECE = sum over bins of (share of samples) x |accuracy - mean confidence|."""
    total = len(confidences)
    if total == 0:
        raise ValueError("ECE needs at least one sample")
    return sum(
        r["count"] / total * abs(r["accuracy"] - r["confidence"]) for r in reliability_bins(confidences, correct, bins)
    )


def reliability_diagram(
    confidences: Sequence[float], correct: Sequence[bool], path: str | Path, title: str = ""
) -> Path:
    """Accuracy per confidence bin against the diagonal of perfect calibration, with per-bin counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = reliability_bins(confidences, correct)
    ece = expected_calibration_error(confidences, correct)
    figure, axis = plt.subplots(figsize=(5, 5))
    width = 1 / len(table)
    filled = [r for r in table if r["count"]]
    axis.bar([r["low"] for r in filled], [r["accuracy"] for r in filled], width=width, align="edge",
             edgecolor="black", label="accuracy")  # fmt: skip
    axis.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    for row in filled:
        axis.annotate(
            str(row["count"]), (row["low"] + width / 2, row["accuracy"]), ha="center", va="bottom", fontsize=8
        )
    axis.set(xlim=(0, 1), ylim=(0, 1.05), xlabel="final-step confidence", ylabel="accuracy",
             title=f"{title} ECE {ece:.3f} (n={len(confidences)})".strip())  # fmt: skip
    axis.legend(loc="upper left")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path


def final_step_confidence(tokens: Sequence[str], logprobs: Sequence[float], boundary: str = DEFAULT_BOUNDARY) -> float:
    confidences = step_confidences(split_steps(tokens, logprobs, boundary))
    if not confidences:
        raise ValueError("an empty reply has no final step")
    return confidences[-1]


async def measure(
    backend: Any, dataset: str, limit: int, out: Path, *, max_tokens: int = 256, data_dir: str | None = None
) -> dict[str, Any]:
    from thoughtgraph.backends import Request
    from thoughtgraph.evals.datasets import DATA_ENV, load_dataset
    from thoughtgraph.prompts import load_prompt

    if not backend.capabilities.logprobs:
        raise ValueError(f"backend {backend.spec} cannot return token logprobs, which calibration needs")
    problems = load_dataset(dataset, "test", data_dir=data_dir or os.environ.get(DATA_ENV)).problems[:limit]
    prompt = load_prompt("cot/solve")
    progress = tqdm(total=len(problems), desc="calibration", unit="problem")

    async def solve(problem: Any) -> Any:
        request = Request.chat(*prompt.render(question=problem.prompt), max_tokens=max_tokens, logprobs=True)
        choice = (await backend.generate_one(request)).choices[0]
        progress.update()
        return choice

    # all at once: a batching backend (hf) decodes them together, a serial one (llama.cpp) queues them
    choices = await asyncio.gather(*(solve(problem) for problem in problems))
    progress.close()
    samples, empty = [], []
    for problem, choice in zip(problems, choices, strict=True):
        if not choice.tokens:
            empty.append(problem.id)  # nothing to measure: counted in the summary, not silently dropped
            continue
        confidence = final_step_confidence(choice.tokens, choice.logprobs or [])
        samples.append(
            {"id": problem.id, "confidence": confidence, "correct": is_correct(choice.text, problem.gold, dataset)}
        )
    if not samples:
        raise ValueError("no reply had tokens to measure")
    confidences, correct = [s["confidence"] for s in samples], [s["correct"] for s in samples]
    out.mkdir(parents=True, exist_ok=True)
    (out / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    summary = {
        "backend": backend.spec, "dataset": dataset, "samples": len(samples), "empty_replies": len(empty),
        "ece": expected_calibration_error(confidences, correct), "accuracy": sum(correct) / len(correct),
        "mean_confidence": sum(confidences) / len(confidences), "bins": reliability_bins(confidences, correct),
    }  # fmt: skip
    (out / "calibration.json").write_text(json.dumps(summary, indent=1))
    reliability_diagram(confidences, correct, out / "reliability.png", title=backend.spec)
    return summary


def main(argv: list[str] | None = None) -> None:
    from thoughtgraph.backends import create_backend

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--dataset", default="gsm8k")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("runs/calibration"))
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--data-dir", help="data folder (default: $THOUGHTGRAPH_DATA; neither: the HF hub)")
    args = parser.parse_args(argv)
    backend = create_backend(args.backend)
    summary = asyncio.run(
        measure(backend, args.dataset, args.limit, args.out, max_tokens=args.max_tokens, data_dir=args.data_dir)
    )
    print(json.dumps({k: v for k, v in summary.items() if k != "bins"}, indent=1))
    print(f"reliability diagram: {args.out / 'reliability.png'}")


if __name__ == "__main__":
    main()
