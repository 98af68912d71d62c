"""The ``thoughtgraph`` command. Subcommands are thin: they parse options and call the Python API."""

from __future__ import annotations

import asyncio
import json
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated, Any

import typer

from thoughtgraph.backends import DEFAULT_BACKEND, BackendError, UsageLedger, create_backend
from thoughtgraph.evals.cli import app as eval_app
from thoughtgraph.evals.cli import parse_options
from thoughtgraph.prompts import PromptError
from thoughtgraph.reasoning.api import make_config, stream_thoughts
from thoughtgraph.reasoning.graph import ThoughtNode
from thoughtgraph.reasoning.methods import METHODS
from thoughtgraph.reasoning.solution import Solution
from thoughtgraph.server.limits import ServeLimits
from thoughtgraph.terminal import for_terminal
from thoughtgraph.terminal import user_errors as terminal_user_errors

_LIMITS = ServeLimits()
USER_ERRORS: tuple[type[Exception], ...] = (BackendError, PromptError, ValueError, FileNotFoundError)
"""What a user got wrong (a bad option, a missing file, a backend that cannot start): one red line, exit 2."""


def user_errors(*more: type[Exception]) -> AbstractContextManager[None]:
    """``USER_ERRORS`` (and ``more``) end the command with one red line and exit status 2."""
    return terminal_user_errors(*USER_ERRORS, *more)


app = typer.Typer(help="LLM reasoning methods and agents on one graph-of-agents runtime.", no_args_is_help=True)
app.add_typer(eval_app, name="eval", help="Benchmarks: `thoughtgraph eval run ...`, `thoughtgraph eval compare ...`.")


@app.callback()
def main() -> None:
    """thoughtgraph command line."""


async def _solve(question: str, method: str, engine, show_thoughts: bool, calls_bar: Any, **kwargs) -> Solution:
    """Stream the run's thoughts; ``calls_bar`` (a tqdm bar or None) follows the calls spent."""
    with UsageLedger() as spent:  # ledgers nest: this one sees every call of the run

        async def follow_calls() -> None:
            while True:
                if spent.calls != calls_bar.n:
                    calls_bar.update(spent.calls - calls_bar.n)
                await asyncio.sleep(0.2)

        follower = asyncio.create_task(follow_calls()) if calls_bar is not None else None
        try:
            async for item in stream_thoughts(question, method, engine, **kwargs):
                if isinstance(item, ThoughtNode):
                    if show_thoughts:
                        score = f" [{item.score:.2f}]" if item.score is not None else ""
                        line = for_terminal(f"  thought {item.id} (after {item.parent}){score}: {item.text[:100]!r}")
                        (calls_bar.write if calls_bar is not None else typer.echo)(typer.style(line, dim=True))
                else:
                    return item
        finally:
            if follower is not None:
                follower.cancel()
                calls_bar.update(spent.calls - calls_bar.n)
                calls_bar.close()
    raise RuntimeError("the method ended without a solution")


def _read_question(argument: str, file: Path | None) -> str:
    """The question from the argument, standard input ('-') or --file, decoded as UTF-8 with a named error."""
    if file is not None and argument:
        raise ValueError("give the question as an argument or with --file, not both")
    if file is not None:
        source, data = str(file), _read_bytes(file)
    elif argument == "-":
        source, data = "standard input", sys.stdin.buffer.read()
    else:
        return argument
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{source} is not UTF-8 text (byte {data[error.start]:#04x} at offset {error.start})"
        ) from None


def _read_bytes(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read the question from {file}: {error.strerror or error}") from None


def _calls_bar(method: str, options: dict, max_calls: int | None, enabled: bool, progress: bool | None) -> Any:
    """Say the method's worst-case call count for its config; a bar of calls spent against the budget."""
    worst = make_config(method, **options).worst_case_calls()
    limit = min(x for x in (worst, max_calls) if x is not None) if (worst or max_calls) else None
    if enabled:
        bound = f"at most {worst} calls" if worst is not None else "no call bound of its own (use --max-calls)"
        budget = f"; budget {max_calls} calls" if max_calls is not None else ""
        typer.secho(f"{method}: {bound} for this config{budget}", dim=True, err=True)
    if not enabled or not (sys.stderr.isatty() if progress is None else progress):  # by default, on terminals
        return None
    from tqdm import tqdm

    return tqdm(total=limit, unit="call", desc="calls", leave=False, dynamic_ncols=True)


@app.command()
def solve(
    question: Annotated[str, typer.Argument(help="The problem to solve; '-' reads it from standard input.")] = "",
    method: Annotated[str, typer.Option(help=f"Reasoning method: {', '.join(METHODS)}.")] = "cot",
    backend: Annotated[str, typer.Option(help="Backend spec, e.g. llamacpp:smollm2 or openai:URL#model.")] = (
        DEFAULT_BACKEND
    ),
    option: Annotated[list[str] | None, typer.Option(help="Method option key=value (repeatable).")] = None,
    max_calls: Annotated[int | None, typer.Option(help="Budget: model calls.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Budget: prompt + completion tokens.")] = None,
    max_seconds: Annotated[float | None, typer.Option(help="Budget: seconds.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for every random choice.")] = 0,
    cache: Annotated[str | None, typer.Option(help="SQLite request cache for free, reproducible reruns.")] = None,
    html: Annotated[Path | None, typer.Option(help="Write the thought graph as an HTML page here.")] = None,
    quiet: Annotated[bool, typer.Option(help="Do not show thoughts as they are produced.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the solution as JSON.")] = False,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Bar of calls spent (default: on a terminal).")
    ] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Read the question from this UTF-8 file.")] = None,
) -> None:
    """Answer QUESTION with a reasoning method; print the answer, the reasoning and the cost."""
    with user_errors():
        question = _read_question(question, file)
        options = parse_options(option or [])
        show = not (quiet or as_json)
        bar = _calls_bar(method, options, max_calls, enabled=show, progress=progress)
        engine = create_backend(backend, cache=cache)
        solution = asyncio.run(
            _solve(
                question,
                method,
                engine,
                show,
                bar,
                seed=seed,
                max_calls=max_calls,
                max_tokens=max_tokens,
                max_seconds=max_seconds,
                **options,
            )
        )
    if html is not None and solution.graph is not None:
        try:
            html.parent.mkdir(parents=True, exist_ok=True)
            html.write_text(solution.graph.to_html(f"{method}: {question[:80]}"), encoding="utf-8")
        except OSError as error:
            typer.secho(f"error: cannot write the trace to {html}: {error.strerror or error}", fg="red", err=True)
            raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(solution.to_dict(), indent=2))
        return
    usage = solution.usage
    if solution.answer is None:
        typer.secho(f"Answer: (none found: {for_terminal(solution.why_no_answer() or '')})", bold=True)
        if html is None:
            typer.echo("(--html FILE writes the thought graph of the run, to see what the method tried)")
    else:
        typer.secho(f"Answer: {for_terminal(solution.answer)}", bold=True)
        if solution.stopped_by:
            typer.secho(f"(budget: {solution.stopped_by}; best answer so far)", fg=typer.colors.YELLOW)
    typer.echo(f"\nReasoning ({solution.method}, {engine.spec}):\n{for_terminal(solution.reasoning)}\n")
    if len(solution.candidates) > 1:
        typer.echo(for_terminal(f"Candidates: {dict(solution.candidates)}"))
    typer.echo(
        f"Cost: {usage['calls']} calls, {usage['prompt_tokens']} prompt + {usage['completion_tokens']} "
        f"completion tokens, {usage['wall_seconds']:.2f} s"
    )
    if html is not None:
        typer.echo(f"Trace: {html}")


@app.command()
def serve(
    backend: Annotated[str, typer.Option(help="Backend spec every method runs on.")] = DEFAULT_BACKEND,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    api_key_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the API key clients must send as a Bearer token.")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(help="The server's own method option METHOD.KEY=VALUE (repeatable), e.g. rsim.planner=SPEC."),
    ] = None,
    max_width: Annotated[int, typer.Option(help="Most parallel branches a request may ask for.")] = _LIMITS.max_width,
    max_depth: Annotated[int, typer.Option(help="Most sequential steps a request may ask for.")] = _LIMITS.max_depth,
    max_tokens: Annotated[int, typer.Option(help="Most tokens one model call may write.")] = _LIMITS.max_tokens,
    max_count: Annotated[int, typer.Option(help="Largest other count or list option.")] = _LIMITS.max_count,
    max_option_chars: Annotated[int, typer.Option(help="Longest text option.")] = _LIMITS.max_option_chars,
    max_run_calls: Annotated[int, typer.Option(help="Most model calls of one run.")] = _LIMITS.max_run_calls,
    max_run_tokens: Annotated[int, typer.Option(help="Most tokens of one run.")] = _LIMITS.max_run_tokens,
    max_run_seconds: Annotated[
        float, typer.Option(help="Longest a run may take; requests may ask for less with max_seconds.")
    ] = _LIMITS.max_run_seconds,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body accepted.")] = _LIMITS.max_body_bytes,
    max_problem_chars: Annotated[int, typer.Option(help="Longest problem accepted.")] = _LIMITS.max_problem_chars,
    max_concurrent_runs: Annotated[
        int, typer.Option(help="Runs in flight at once (429 beyond).")
    ] = _LIMITS.max_concurrent_runs,
    max_connections: Annotated[int, typer.Option(help="Open connections at once (503 beyond).")] = (
        _LIMITS.max_connections
    ),
    header_timeout: Annotated[
        float, typer.Option(help="Seconds a connection has to send a request head, and a body may stall.")
    ] = _LIMITS.header_timeout_seconds,
    list_traces: Annotated[
        bool, typer.Option("--list-traces", help="Serve GET /v1/traces (lists every client's problems).")
    ] = False,
    cache: Annotated[str | None, typer.Option(help="SQLite request cache.")] = None,
) -> None:
    """Serve every method behind an OpenAI-compatible API: /v1/models, /v1/chat/completions, /v1/traces/ID."""
    import os

    from thoughtgraph.server import create_app
    from thoughtgraph.server.http import run_server

    api_key = None
    if api_key_env is not None:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            typer.secho(f"error: the environment variable {api_key_env} is not set", fg="red", err=True)
            raise typer.Exit(2)
    with user_errors():
        limits = ServeLimits(
            max_width=max_width, max_depth=max_depth, max_tokens=max_tokens, max_count=max_count,
            max_option_chars=max_option_chars,
            max_run_calls=max_run_calls, max_run_tokens=max_run_tokens, max_run_seconds=max_run_seconds,
            max_body_bytes=max_body_bytes, max_problem_chars=max_problem_chars,
            max_concurrent_runs=max_concurrent_runs, max_connections=max_connections,
            header_timeout_seconds=header_timeout,
        )  # fmt: skip
        server_options = _server_options(option or [])
        engine = create_backend(backend, cache=cache)
    typer.echo(f"thoughtgraph serving {', '.join(METHODS)} on {engine.spec} at http://{host}:{port}/v1"
               + (" (API key required)" if api_key else ""))  # fmt: skip
    app = create_app(engine, api_key=api_key, limits=limits, server_options=server_options, list_traces=list_traces)
    run_server(app, host=host, port=port, limits=limits)


def _server_options(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """``METHOD.KEY=VALUE`` pairs as options per method, each checked by building the method's config."""
    by_method: dict[str, list[str]] = {}
    for pair in pairs:
        method, dot, rest = pair.partition(".")
        if not dot or method not in METHODS or "=" not in rest:
            raise ValueError(f"--option {pair!r}: write METHOD.KEY=VALUE with METHOD one of {', '.join(METHODS)}")
        by_method.setdefault(method, []).append(rest)
    options = {method: parse_options(items) for method, items in by_method.items()}
    for method, values in options.items():
        make_config(method, **values)
    return options


diagnose_app = typer.Typer(
    help="Diagnose a broken AI job in a chat: `thoughtgraph diagnose --attach train.log`.",
    invoke_without_command=True,
)
app.add_typer(diagnose_app, name="diagnose")


@diagnose_app.callback()
def diagnose(
    ctx: typer.Context,
    attach: Annotated[list[str] | None, typer.Option(help="Attach a file: name=path (repeatable).")] = None,
    session: Annotated[str | None, typer.Option(help="Resume this session.")] = None,
    list_sessions: Annotated[bool, typer.Option("--list", help="List sessions and their state.")] = False,
    delete: Annotated[str | None, typer.Option(help="Delete this session.")] = None,
    db: Annotated[str | None, typer.Option(help="Session store: a SQLite file or a postgresql:// URL.")] = None,
    backend: Annotated[str | None, typer.Option(help="Backend spec for the agents.")] = DEFAULT_BACKEND,
    kb: Annotated[
        str | None, typer.Option(help="Knowledge base folder (default: mined from the shipped corpus).")
    ] = None,
    no_model: Annotated[
        bool, typer.Option("--no-model", help="Diagnose without a model (tools and retrieval).")
    ] = False,
    embeddings: Annotated[str | None, typer.Option(help="llamacpp:MODEL whose vectors join BM25 retrieval.")] = None,
    attachments_dir: Annotated[
        str | None,
        typer.Option(
            help="Folder that file paths inside attachments are read from (default: the first "
            "attachment's folder, else the working directory); paths may not leave it."
        ),
    ] = None,
) -> None:
    """Start or resume a diagnosis chat."""
    if ctx.invoked_subcommand is not None:
        return
    from thoughtgraph.agents.diagnosis.api import UnknownSession
    from thoughtgraph.agents.diagnosis.chat import chat, delete_session, read_attachments
    from thoughtgraph.agents.diagnosis.chat import list_sessions as show_sessions

    try:
        with user_errors(UnknownSession):
            if list_sessions:
                asyncio.run(show_sessions(db, _write_line))
                return
            if delete is not None:
                asyncio.run(delete_session(db, delete))
                typer.echo(f"deleted session {delete}")
                return
            attachments = read_attachments(attach or [])
            folder = attachments_dir or (str(Path(attach[0].partition("=")[2] or attach[0]).parent) if attach else None)
            asyncio.run(
                chat(read=_read_line, write=_write_line, session=session, db=db, backend=None if no_model else backend,
                     kb=kb, attachments=attachments, embeddings=embeddings, attachments_dir=folder)
            )  # fmt: skip
    except (EOFError, KeyboardInterrupt):
        typer.echo("\nstopped; the session is saved (resume with --session ID)")


def _read_line(prompt: str) -> str:
    return input(prompt)


def _write_line(text: str) -> None:
    """Chat output (model text, session contents) with terminal controls shown, not obeyed."""
    typer.echo(for_terminal(text))


@diagnose_app.command("mine")
def diagnose_mine(
    corpus: Annotated[list[str], typer.Argument(help="Incident JSONL files or folders.")],
    out: Annotated[str, typer.Option(help="Folder for kb.json.")],
    backend: Annotated[str | None, typer.Option(help="Backend spec: an LLM titles and summarises each entry.")] = None,
    embeddings: Annotated[str | None, typer.Option(help="llamacpp:MODEL: store embeddings for retrieval.")] = None,
    grouping: Annotated[
        str, typer.Option(help="signature (regex-masked first error line) or drain (its Drain log template).")
    ] = "signature",
) -> None:
    """Mine incident records into a troubleshooting knowledge base."""
    from thoughtgraph.agents.diagnosis.embeddings import LlamaCppEmbedder
    from thoughtgraph.agents.diagnosis.incidents import load_incidents
    from thoughtgraph.agents.diagnosis.mining import mine_with_model

    with user_errors():
        incidents, problems = load_incidents(*corpus)
    for problem in problems:
        typer.secho(for_terminal(f"skipped {problem}"), fg=typer.colors.YELLOW, err=True)
    with user_errors():
        embedder = LlamaCppEmbedder(embeddings) if embeddings else None
        model = create_backend(backend) if backend else None
        kb = mine_with_model(incidents, model, embedder, grouping)
    path = kb.save(out)
    typer.echo(
        f"{len(kb.entries)} guide entries from {len(kb.incidents)} incidents ({len(problems)} lines skipped)"
        + (f", {kb.summaries_failed} summaries unparsed" if backend else "")
        + f": {path}"
    )


train_app = typer.Typer(
    help="Trainers (TRL + PEFT): `thoughtgraph train gg-calibrate --config FILE.yaml`; `--help` lists a "
    "trainer's options. The same scripts run under `accelerate launch -m thoughtgraph.trainers.NAME`.",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")
TRAINERS = {
    "gg-calibrate": ("gg_calibrate", "GG confidence calibration (GRPO, LoRA)."),
    "rsim": ("rsim", "rSIM leader-follower RL: the planner, then the reasoner."),
    "sft": ("sft", "SFT on the solved traces of evals runs."),
    "calibration": ("calibration", "Measure ECE of a backend's final-step confidence (before/after training)."),
    "recipe": ("recipe", "Train and measure before/after on held-out problems: trainers/configs/recipes/*.yaml."),
}
"""Subcommand -> (module of ``thoughtgraph.trainers``, help). Each module's ``main(argv)`` parses its own
options (TRL's ``TrlParser``: a YAML config plus overrides), exactly as ``python -m`` runs it."""


def _trainer_command(name: str, module: str) -> Any:
    def run(ctx: typer.Context) -> None:
        import importlib

        sys.argv = [f"thoughtgraph train {name}", *ctx.args]  # what the trainer's parser shows as its usage
        importlib.import_module(f"thoughtgraph.trainers.{module}").main(list(ctx.args))

    return run


for _name, (_module, _help) in TRAINERS.items():
    train_app.command(
        _name, help=_help, add_help_option=False,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(_trainer_command(_name, _module))  # fmt: skip


models_app = typer.Typer(help="Model files: `thoughtgraph models export smollm2 DIR`.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("export")
def models_export(
    model: Annotated[str, typer.Argument(help="A GGUF preset (smollm2) or a .gguf path.")],
    out: Annotated[Path, typer.Argument(help="Folder for the transformers model.")],
) -> None:
    """Dequantise a GGUF into a transformers folder (what the trainers and the hf backend load)."""
    from thoughtgraph.backends.hf import export_hf_folder

    with user_errors():
        folder = export_hf_folder(model, out)
    typer.echo(f"exported {model} to {folder} (hf:{folder})")
