"""``python -m thoughtgraph.evals run|compare`` (also ``thoughtgraph eval``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from thoughtgraph.backends import DEFAULT_BACKEND, BackendError
from thoughtgraph.evals.compare import format_table, load_results, plot, rows
from thoughtgraph.evals.datasets import DATA_ENV, DATASETS, DataError
from thoughtgraph.evals.runner import EvalConfig, run_eval
from thoughtgraph.terminal import user_errors

app = typer.Typer(
    help="Accuracy and cost of reasoning methods on GSM8K, MATH, Game of 24 and AQuA.", no_args_is_help=True
)


def parse_options(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"--option takes key=value, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


@app.command()
def run(
    dataset: Annotated[str, typer.Option(help=f"One of: {', '.join(DATASETS)}.")],
    method: Annotated[str, typer.Option(help="Reasoning method.")] = "cot",
    backend: Annotated[str, typer.Option(help="Backend spec.")] = DEFAULT_BACKEND,
    split: Annotated[str, typer.Option(help="Dataset split.")] = "test",
    limit: Annotated[int | None, typer.Option(help="Use at most N problems.")] = None,
    offset: Annotated[int, typer.Option(help="Skip the first N problems.")] = 0,
    ids: Annotated[str | None, typer.Option(help="Comma-separated problem ids.")] = None,
    sample: Annotated[int | None, typer.Option(help="A seeded random sample of N problems.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for sampling and the method.")] = 0,
    concurrency: Annotated[
        int | None, typer.Option(help="Problems in flight at once; default: found while the run goes.")
    ] = None,
    out: Annotated[str, typer.Option(help="Output folder; a rerun into it resumes.")] = "runs",
    run_name: Annotated[str | None, typer.Option(help="Run folder name (default from the settings).")] = None,
    data_dir: Annotated[str | None, typer.Option(help=f"Local data folder (or ${DATA_ENV}); else the hub.")] = None,
    skip_bad: Annotated[bool, typer.Option(help="Skip malformed records, counting them.")] = False,
    cache: Annotated[str | None, typer.Option(help="SQLite request cache.")] = None,
    option: Annotated[list[str] | None, typer.Option(help="Method option key=value (repeatable).")] = None,
    max_seconds: Annotated[
        float | None, typer.Option(help="Budget per problem in seconds (request timeouts included).")
    ] = None,
    no_progress: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Run a method on a benchmark and write samples.jsonl and results.json."""
    with user_errors(DataError, BackendError, ValueError):
        config = EvalConfig(
            dataset=dataset,
            method=method,
            backend=backend,
            split=split,
            limit=limit,
            offset=offset,
            ids=ids.split(",") if ids else None,
            sample=sample,
            seed=seed,
            concurrency=concurrency,
            out=out,
            run_name=run_name,
            data_dir=data_dir,
            skip_bad=skip_bad,
            cache=cache,
            max_seconds=max_seconds,
            method_options=parse_options(option or []),
        )
        results = asyncio.run(run_eval(config, progress=not no_progress))
    accuracy = results["accuracy"]
    counts = results["counts"]
    typer.echo(
        f"{results['dataset']} {results['method']} on {results['backend']}: accuracy {accuracy['value']:.1%} "
        f"(95% CI {accuracy['ci95'][0]:.1%}-{accuracy['ci95'][1]:.1%}) over {results['n_samples']} problems; "
        f"solved {counts['solved']}, wrong {counts['wrong']}, failed {counts['failed']}"
    )
    if "accuracy_strict" in results:
        typer.echo(
            f"strict {results['accuracy_strict']['value']:.1%}, flexible {results['accuracy_flexible']['value']:.1%}"
        )
    typer.echo(f"written to {Path(config.out) / config.name}/")
    if results["n_samples"] and counts["failed"] == results["n_samples"]:
        typer.secho("error: every problem failed; see the errors in samples.jsonl", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)


@app.command()
def compare(
    runs: Annotated[list[str], typer.Argument(help="Run directories to compare.")],
    plot_path: Annotated[str, typer.Option("--plot", help="Where to write the PNG plot.")] = "compare.png",
) -> None:
    """Print runs side by side and plot accuracy against tokens per problem."""
    with user_errors(FileNotFoundError, json.JSONDecodeError, KeyError):
        loaded = [load_results(r) for r in runs]
    typer.echo(format_table(rows(loaded)))
    typer.echo(f"plot: {plot(loaded, plot_path)}")


@app.command()
def diagnose(
    incidents: Annotated[str, typer.Option(help="Incident JSONL file to evaluate (labelled).")],
    out: Annotated[str, typer.Option(help="Run folder: results.jsonl and summary.json (resumable).")],
    backend: Annotated[str | None, typer.Option(help="Backend spec for the agents; none: no model.")] = None,
    variant: Annotated[
        str, typer.Option(help="full, sequential, retrieval-only or no-tools; several, comma-separated, to compare.")
    ] = "full",
    history: Annotated[
        list[str] | None, typer.Option(help="Incident files to mine (default: shipped history).")
    ] = None,
    kb: Annotated[str | None, typer.Option(help="A mined knowledge base folder instead of --history.")] = None,
    limit: Annotated[int | None, typer.Option(help="Evaluate at most N incidents.")] = None,
    embeddings: Annotated[str | None, typer.Option(help="llamacpp:MODEL whose vectors join BM25.")] = None,
    grouping: Annotated[
        str, typer.Option(help="How the mined history groups incidents: signature or drain (log templates).")
    ] = "signature",
) -> None:
    """Diagnosis accuracy, tool use and verification time on held-out incidents."""
    from thoughtgraph.evals.diagnosis import compare_variants, comparison_table, evaluate

    options: dict[str, Any] = dict(
        backend=backend, history=history, kb=kb, limit=limit, embeddings=embeddings, grouping=grouping
    )
    variants = [v.strip() for v in variant.split(",") if v.strip()]
    with user_errors(ValueError, FileNotFoundError, BackendError):
        if len(variants) > 1:
            summaries = asyncio.run(compare_variants(incidents, out, variants, **options))
            typer.echo(comparison_table(summaries))
            return
        summary = asyncio.run(evaluate(incidents, out, variant=variant, **options))
    typer.echo(json.dumps(summary, indent=1))
