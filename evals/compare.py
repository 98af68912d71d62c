"""Side-by-side comparison of runs: a table, and a plot of accuracy against tokens per problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COLUMNS = ("run", "method", "backend", "n", "accuracy", "ci95", "calls/problem", "tokens/problem", "s/problem")


def load_results(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"no results.json in {run_dir} (is it a run directory?)")
    results = json.loads(path.read_text(encoding="utf-8"))
    results["run"] = Path(run_dir).name
    return results


def rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table = []
    for r in runs:
        per_problem = r["usage"]["per_problem"]
        low, high = r["accuracy"]["ci95"]
        table.append(
            {
                "run": r["run"],
                "method": r["method"],
                "backend": r["backend"],
                "n": r["n_samples"],
                "accuracy": f"{r['accuracy']['value']:.1%}",
                "ci95": f"{low:.1%}-{high:.1%}",
                "calls/problem": f"{per_problem['calls']:.2f}",
                "tokens/problem": f"{per_problem['total_tokens']:.0f}",
                "s/problem": f"{per_problem['wall_seconds']:.2f}",
            }
        )
    return table


def format_table(table: list[dict[str, Any]]) -> str:
    widths = {c: max(len(c), *(len(str(row[c])) for row in table)) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS), "  ".join("-" * widths[c] for c in COLUMNS)]
    lines += ["  ".join(str(row[c]).ljust(widths[c]) for c in COLUMNS) for row in table]
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    for r in runs:
        tokens = r["usage"]["per_problem"]["total_tokens"]
        value = r["accuracy"]["value"]
        low, high = r["accuracy"]["ci95"]
        yerr = [[max(0.0, value - low)], [max(0.0, high - value)]]  # results written before the interval held p
        axes.errorbar(tokens, value, yerr=yerr, fmt="o", capsize=4)
        axes.annotate(
            f"{r['method']} ({r['run']})", (tokens, value), textcoords="offset points", xytext=(6, 6), fontsize=8
        )
    axes.set_xlabel("tokens per problem")
    axes.set_ylabel("accuracy (95% interval)")
    axes.set_ylim(-0.02, 1.02)
    axes.set_title("accuracy against cost")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return Path(path)
