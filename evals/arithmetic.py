"""A generated task family where a small model is right some of the time: one- and two-digit sums and one-digit
products, as bare questions and as one-line word problems.

SmolLM2-135M answers about 40% of one-digit sums and 55% of one-digit products with the chain-of-thought prompt
(20 of each, greedy, measured here), against 0-10% on GSM8K and two-digit sums: a family where training can be
seen to move accuracy and calibration. Problems are written as GSM8K records (``question``, ``answer`` ending
in ``#### N``) under ``arith/`` so the ``arith`` dataset reads them like any other; train and test hold
disjoint questions::

    python -m thoughtgraph.evals.arithmetic DATA_DIR --train 300 --test 200 --seed 0
    thoughtgraph eval run --dataset arith --data-dir DATA_DIR --limit 50
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

FOLDER = "arith"
NAMES = ("Tom", "Ana", "Li", "Sam", "Maya", "Omar")
THINGS = ("apples", "books", "coins", "stickers", "pencils", "marbles")


def _sum(a: int, b: int, worded: bool, rng: random.Random) -> str:
    if not worded:
        return f"What is {a} + {b}?"
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    return f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?"


def _product(a: int, b: int, worded: bool, rng: random.Random) -> str:
    if not worded:
        return f"What is {a} * {b}?"
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    return f"{name} has {a} bags with {b} {thing} in each bag. How many {thing} does {name} have?"


def all_problems(seed: int) -> list[dict[str, str]]:
    """Every question of the family once (sums of 1-20 and 1-20, products of 2-9 and 2-9, each bare and worded),
    shuffled by ``seed``: 2 x (400 + 64) records."""
    rng = random.Random(seed)
    records = []
    for worded in (False, True):
        for a in range(1, 21):
            for b in range(1, 21):
                records.append({"question": _sum(a, b, worded, rng), "answer": f"{a} + {b} = {a + b}\n#### {a + b}"})
        for a in range(2, 10):
            for b in range(2, 10):
                product = f"{a} * {b} = {a * b}\n#### {a * b}"
                records.append({"question": _product(a, b, worded, rng), "answer": product})
    rng.shuffle(records)
    return records


def write_splits(data_dir: str | Path, *, train: int, test: int, seed: int = 0) -> dict[str, Path]:
    """``arith/train.jsonl`` and ``arith/test.jsonl`` under ``data_dir``; no question is in both."""
    records = all_problems(seed)
    if train < 1 or test < 1 or train + test > len(records):
        raise ValueError(f"train and test must be at least 1 and together at most {len(records)}, got {train}+{test}")
    folder = Path(data_dir) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, rows in (("test", records[:test]), ("train", records[test : test + train])):
        paths[split] = folder / f"{split}.jsonl"
        paths[split].write_text("".join(json.dumps(row) + "\n" for row in rows))
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        paths = write_splits(args.data_dir, train=args.train, test=args.test, seed=args.seed)
    except ValueError as error:
        parser.error(str(error))
    print("\n".join(f"{split}: {path}" for split, path in paths.items()))


if __name__ == "__main__":
    main()
