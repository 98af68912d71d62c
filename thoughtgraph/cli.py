"""The ``thoughtgraph`` command. Subcommands are thin: they parse options and call the Python API."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from backends import DEFAULT_BACKEND, BackendError, create_backend
from evals.cli import app as eval_app
from prompts import PromptError
from reasoning.api import METHODS, solve_async

app = typer.Typer(help="LLM reasoning methods and agents on one graph-of-agents runtime.", no_args_is_help=True)


app.add_typer(eval_app, name="eval", help="Benchmarks: `thoughtgraph eval run ...`, `thoughtgraph eval compare ...`.")


@app.callback()
def main() -> None:
    """thoughtgraph command line."""


@app.command()
def solve(
    question: Annotated[str, typer.Argument(help="The problem to solve.")],
    method: Annotated[str, typer.Option(help=f"Reasoning method: {', '.join(METHODS)}.")] = "cot",
    backend: Annotated[str, typer.Option(help="Backend spec, e.g. llamacpp:smollm2 or openai:URL#model.")] = (
        DEFAULT_BACKEND
    ),
    max_tokens: Annotated[int, typer.Option(help="Token limit of the reasoning chain.")] = 512,
    seed: Annotated[int, typer.Option(help="Seed for every random choice.")] = 0,
    cache: Annotated[str | None, typer.Option(help="SQLite request cache for free, reproducible reruns.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the solution as JSON.")] = False,
) -> None:
    """Answer QUESTION with a reasoning method and print the answer, the reasoning and the cost."""
    try:
        engine = create_backend(backend, cache=cache)
        solution = asyncio.run(solve_async(question, method, engine, seed=seed, max_tokens=max_tokens))
    except (BackendError, PromptError, ValueError) as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(solution.to_dict(), indent=2))
        return
    usage = solution.usage
    typer.secho(f"Answer: {solution.answer if solution.answer is not None else '(none found)'}", bold=True)
    typer.echo(f"\nReasoning ({solution.method}, {engine.spec}):\n{solution.reasoning}\n")
    typer.echo(
        f"Cost: {usage['calls']} calls, {usage['prompt_tokens']} prompt + {usage['completion_tokens']} "
        f"completion tokens, {usage['wall_seconds']:.2f} s"
    )
