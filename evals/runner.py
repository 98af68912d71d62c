"""Run a method on a benchmark: concurrent, resumable, and honest about failures and cost.

Layout (after lm-evaluation-harness: a results file plus a per-sample log)::

    <out>/<run name>/samples.jsonl   one line per finished problem, appended and flushed at once
    <out>/<run name>/results.json    accuracy, counts, usage, breakdowns, and everything to reproduce

Rerunning into the same directory skips the problems already in ``samples.jsonl``; a process
killed mid-run loses only the problems that were in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from thoughtgraph import __version__
from thoughtgraph.agents.runtime import Budget
from thoughtgraph.backends import (
    DEFAULT_BACKEND,
    Backend,
    BackendConfigError,
    BackendError,
    BackendUnavailableError,
    CapabilityError,
    UsageLedger,
    create_backend,
)
from thoughtgraph.evals.concurrency import AdaptiveConcurrency
from thoughtgraph.evals.datasets import DATASETS, DataError, DatasetSpec, Problem, load_dataset, select
from thoughtgraph.evals.files import checked_run_folder, open_log, refuse_link, write_file
from thoughtgraph.evals.report import summarize
from thoughtgraph.evals.sandbox import GradingSandbox, shared_sandbox
from thoughtgraph.evals.scoring import GradingInput
from thoughtgraph.reasoning.api import make_config, run_method
from thoughtgraph.reasoning.methods import METHODS


@dataclass
class EvalConfig:
    dataset: str
    method: str = "cot"
    backend: str = DEFAULT_BACKEND
    split: str = "test"
    method_options: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    offset: int = 0
    ids: list[str] | None = None
    sample: int | None = None
    seed: int = 0
    concurrency: int | None = None
    """Problems in flight at once; None: found while the run goes (``evals.concurrency.AdaptiveConcurrency``)."""
    out: str = "runs"
    run_name: str | None = None
    data_dir: str | None = None
    skip_bad: bool = False
    cache: str | None = None
    max_seconds: float | None = None
    """Budget per problem: everything a problem waits for (request timeouts and retries included)
    ends at this many seconds, and the method answers with what it has."""

    def __post_init__(self) -> None:
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.run_name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.run_name):
            raise ValueError(
                f"run name {self.run_name!r} must be a plain name (letters, digits, '.', '_', '-'), not a path"
            )
        Budget(max_seconds=self.max_seconds)  # the budget's own check, at configuration time

    @property
    def name(self) -> str:
        if self.run_name:
            return self.run_name
        backend = re.sub(r"[^A-Za-z0-9.]+", "-", model_identity(self.backend)).strip("-")
        return f"{self.dataset}-{self.split}-{self.method}-{backend}-seed{self.seed}"


def model_identity(spec: str) -> str:
    """What a run's answers depend on in a backend spec: for a server, the model it serves, not its address, so a
    rerun against the same model on another port or set of replicas resumes the same run folder."""
    scheme, _, target = spec.partition(":")
    if scheme == "openai":
        return f"openai:{target.partition('#')[2] or 'default'}"
    return spec


@dataclass
class RunState:
    answered: bool = False
    """Whether the backend has answered any problem of this run (an unreachable one then is transient)."""


def _parse(lines: list[str]) -> list[dict[str, Any]]:
    """The samples among ``lines``: a line cut short by a kill, or one that is not a sample object with an
    ``id``, is left out (and dropped when the log is mended)."""
    samples = []
    for line in lines:
        try:
            sample = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(sample, dict) and isinstance(sample.get("id"), str):
            samples.append(sample)
    return samples


def read_samples(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a samples log (never read through a link: see ``evals.files``)."""
    refuse_link(path)
    return _parse(path.read_text(encoding="utf-8").splitlines()) if path.is_file() else []


def _solved(sample: dict[str, Any]) -> bool:
    return sample.get("status") == "ok"


def resume(samples_path: Path, finished_when: Callable[[dict[str, Any]], bool] = _solved) -> set[str]:
    """Ids already finished (``finished_when``; default: solved), with the log mended in one rewrite: a line cut
    short by a kill and the problems that failed before (a backend down, say) are dropped, so the rerun does
    them again and the log keeps one line per problem."""
    refuse_link(samples_path)
    if not samples_path.is_file():
        return set()
    lines = samples_path.read_text(encoding="utf-8").splitlines()
    finished = [s for s in _parse(lines) if finished_when(s)]
    if len(finished) < len(lines):
        write_file(samples_path, "".join(json.dumps(s) + "\n" for s in finished))
    return {s["id"] for s in finished}


def git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


def _method_config(config: EvalConfig, dataset: DatasetSpec) -> Any:
    """The method's config for this dataset: the user's options, then the dataset's answer form and generation
    defaults where the method has such options."""
    options = dict(config.method_options)
    config_fields = set(METHODS[config.method].option_names()) if config.method in METHODS else set()
    if "answer_pattern" in config_fields:
        options.setdefault("answer_pattern", dataset.answer_pattern)
    for name, value in dataset.generation.items():
        if name in config_fields:
            options.setdefault(name, value)
    return make_config(config.method, **options)


async def _solve_one(
    problem: Problem,
    config: EvalConfig,
    method_config: Any,
    backend: Backend,
    sandbox: GradingSandbox,
    state: RunState,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": problem.id,
        "question": problem.question,
        "gold": problem.gold,
        "metadata": problem.metadata,
    }
    started = time.perf_counter()
    with UsageLedger() as ledger:
        try:
            budget = Budget(max_seconds=config.max_seconds)
            solution = await run_method(problem.prompt, config.method, backend, method_config, budget, seed=config.seed)
        except (BackendConfigError, CapabilityError):
            raise  # wrong model, credentials, URL or capability: every problem would fail the same way
        except (BackendError, ValueError) as error:  # recorded, counted, and the run goes on
            if isinstance(error, BackendUnavailableError) and not state.answered:  # no server there: stop now
                raise BackendUnavailableError(f"nothing answered: {error}", error.attempts) from None
            record.update(status="failed", error=f"{type(error).__name__}: {error}", correct=False)
            solution = None
    if solution is not None:
        state.answered = True
        graded = await asyncio.to_thread(sandbox.grade, GradingInput.of(DATASETS[config.dataset], problem, solution))
        record.update(
            status="ok",
            prediction=graded.prediction,
            correct=graded.correct,
            strict=graded.strict,
            flexible=graded.flexible,
            ungradable=graded.ungradable,
            answer=solution.answer,
            candidates=dict(solution.candidates),
            reasoning=solution.reasoning,
            prompt_versions=solution.prompt_versions,
            stopped_by=solution.stopped_by,
            graph=solution.graph.to_dict() if solution.graph else None,
        )
    record["usage"] = ledger.to_dict()
    record["seconds"] = round(time.perf_counter() - started, 3)
    return record


async def run_eval(
    config: EvalConfig,
    *,
    progress: bool = True,
    backend: Backend | None = None,
    sandbox: GradingSandbox | None = None,
) -> dict[str, Any]:
    """Run, grade (in ``sandbox``, by default the process's shared one) and write the results."""
    loaded = load_dataset(config.dataset, config.split, data_dir=config.data_dir, skip_bad=config.skip_bad)
    problems = select(
        loaded.problems,
        spec=loaded.spec,
        offset=config.offset,
        limit=config.limit,
        ids=config.ids,
        sample=config.sample,
        seed=config.seed,
    )
    if not problems:
        raise DataError(
            f"no problems selected: the options (limit {config.limit}, offset {config.offset}, ids, sample) "
            f"leave none of the {len(loaded.problems)} problems of {config.dataset}/{config.split}"
        )
    method_config = _method_config(config, loaded.spec)
    run_dir = Path(config.out) / config.name
    if Path(config.out).exists() and not Path(config.out).is_dir():
        raise ValueError(f"--out {config.out} is a file; give a folder for the runs")
    checked_run_folder(run_dir)
    with _only_writer(run_dir):
        samples_path = run_dir / "samples.jsonl"
        done = resume(samples_path)
        todo = [p for p in problems if p.id not in done]
        if len(todo) < len(problems):
            print(
                f"resuming {run_dir}: {len(problems) - len(todo)} of {len(problems)} problems already done",
                file=sys.stderr,
            )
        engine = backend or create_backend(config.backend, cache=config.cache)
        sandbox = sandbox or shared_sandbox()
        started = time.perf_counter()
        bar = _progress_bar(len(problems), len(problems) - len(todo), enabled=progress)
        adaptive = AdaptiveConcurrency() if config.concurrency is None else None
        gate = adaptive or asyncio.Semaphore(config.concurrency)
        state = RunState()
        finished: list[dict[str, Any]] = []
        with open_log(samples_path) as log:

            async def attempt(problem: Problem) -> None:
                async with gate:
                    entered = time.perf_counter()
                    record = await _solve_one(problem, config, method_config, engine, sandbox, state)
                    in_flight = time.perf_counter() - entered
                if adaptive is not None:
                    await adaptive.done(record.get("usage", {}).get("completion_tokens", 0), in_flight)
                log.write(json.dumps(record) + "\n")
                log.flush()
                finished.append(record)
                _advance(bar, finished)

            await asyncio.gather(*(attempt(p) for p in todo))
        if bar is not None:
            bar.close()
        wanted = {p.id for p in problems}
        samples = [s for s in read_samples(samples_path) if s["id"] in wanted]
        results = {
            "dataset": config.dataset,
            "split": config.split,
            "data_source": loaded.source,
            "skipped_bad_records": len(loaded.skipped),
            "method": config.method,
            "method_config": asdict(method_config),
            "backend": engine.spec,
            "model": engine.model_id,
            "seed": config.seed,
            "prompt_versions": _prompt_versions(samples),
            "package_version": __version__,
            "git_commit": git_commit(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": asdict(config),
            "run_seconds_this_session": round(time.perf_counter() - started, 3),
            "concurrency": adaptive.report() if adaptive else {"mode": "fixed", "final": config.concurrency},
            **summarize(samples),
        }
        results.update(_lm_eval_view(results, len(loaded.problems)))
        write_file(run_dir / "results.json", json.dumps(results, indent=2))
        return results


@contextlib.contextmanager
def _only_writer(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock: a second ``evals run`` into the same folder refuses instead of interleaving."""
    with open_log(run_dir / ".lock") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(
                f"another `evals run` is writing {run_dir}; wait for it to finish or choose another --run-name"
            ) from None
        yield


def _lm_eval_view(results: dict[str, Any], original: int) -> dict[str, Any]:
    """The same figures under lm-evaluation-harness's key names, so its tooling can read them."""
    metrics: dict[str, Any] = {"alias": results["dataset"]}
    variants = {"none": "accuracy", "strict-match": "accuracy_strict", "flexible-extract": "accuracy_flexible"}
    for filter_name, key in variants.items():
        if key in results:
            value, n = results[key]["value"], results[key]["n"]
            metrics[f"exact_match,{filter_name}"] = value
            metrics[f"exact_match_stderr,{filter_name}"] = (value * (1 - value) / (n - 1)) ** 0.5 if n > 1 else 0.0
    return {
        "results": {results["dataset"]: metrics},
        "n-samples": {results["dataset"]: {"original": original, "effective": results["n_samples"]}},
        "git_hash": results["git_commit"],
    }


def _prompt_versions(samples: list[dict[str, Any]]) -> dict[str, Any]:
    versions: dict[str, Any] = {}
    for sample in samples:
        versions.update(sample.get("prompt_versions") or {})
    return versions


def _progress_bar(total: int, already: int, *, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=already, unit="problem", dynamic_ncols=True)


def _advance(bar: Any, finished: list[dict[str, Any]]) -> None:
    if bar is None:
        return
    solved = sum(1 for r in finished if r.get("correct"))
    tokens = sum(r["usage"]["total_tokens"] for r in finished) / len(finished)
    calls = sum(r["usage"]["calls"] for r in finished) / len(finished)
    bar.set_postfix(acc=f"{solved / len(finished):.1%}", calls=f"{calls:.1f}", tokens=f"{tokens:.0f}")
    bar.update(1)
