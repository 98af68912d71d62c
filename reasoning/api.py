"""The Python entry point: ``solve(problem, method="tr", backend="llamacpp:smollm2")``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from thoughtgraph.agents.runtime import Budget, BudgetExceeded
from thoughtgraph.backends import DEFAULT_BACKEND, Backend, shared_backend
from thoughtgraph.reasoning.context import RunContext, ThoughtListener
from thoughtgraph.reasoning.fitting import run_within_budget
from thoughtgraph.reasoning.graph import ThoughtNode
from thoughtgraph.reasoning.methods import method_spec
from thoughtgraph.reasoning.outcome import outcome_from_graph
from thoughtgraph.reasoning.solution import Solution

T = TypeVar("T")

ENGINE_SETTLE_SECONDS = 5.0
"""After a deadline, how long to wait for in-process engine work that was cancelled to stop and report
its usage (llama.cpp stops at its next token; an engine that cannot stop is waited for this long)."""


def make_config(method: str, preset: str | None = None, **options: Any) -> Any:
    """The method's config: its defaults, then the preset's values, then ``options``."""
    return method_spec(method).make_config(preset, **options)


async def solve_async(
    problem: str,
    method: str = "cot",
    backend: str | Backend = DEFAULT_BACKEND,
    *,
    seed: int = 0,
    max_calls: int | None = None,
    max_tokens: int | None = None,
    max_seconds: float | None = None,
    on_thought: ThoughtListener | None = None,
    **config: Any,
) -> Solution:
    """Solve ``problem``. ``max_*`` are budgets for the whole run: when one is spent the run ends with
    the best answer so far and ``Solution.stopped_by`` says which."""
    if not isinstance(problem, str) or not problem.strip():
        raise ValueError("the problem is empty: give a question to solve")
    try:
        problem.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"the problem is not valid text: character {error.start} ({problem[error.start]!r}) is half of a "
            "surrogate pair, as bytes that are not UTF-8 decode to; pass the question as UTF-8"
        ) from None
    settings = make_config(method, **config)
    budget = Budget(max_calls=max_calls, max_tokens=max_tokens, max_seconds=max_seconds)
    engine = backend if isinstance(backend, Backend) else shared_backend(backend)
    return await run_method(problem, method, engine, settings, budget, seed=seed, on_thought=on_thought)


async def run_method(
    problem: str,
    method: str,
    engine: Backend,
    settings: Any,
    budget: Budget | None = None,
    *,
    seed: int = 0,
    on_thought: ThoughtListener | None = None,
) -> Solution:
    """Run a method with a ready config object (what ``solve_async`` and the eval runner share)."""
    budget = budget or Budget()
    context = RunContext(problem.strip(), engine, budget, seed, on_thought=on_thought)
    with budget.ledger:
        deadline = asyncio.timeout(budget.seconds_left())
        try:
            async with deadline:  # everything the run waits for, request timeouts and retries included
                outcome = await run_within_budget(method_spec(method), context, settings)
        except BudgetExceeded:
            outcome = outcome_from_graph(context.graph)
        except TimeoutError:
            if not deadline.expired():
                raise
            budget.bind(f"max_seconds={budget.max_seconds} reached")
            outcome = outcome_from_graph(context.graph)
        await budget.ledger.settle(ENGINE_SETTLE_SECONDS)
        stopped_by = budget.bound_by
    return Solution(
        answer=outcome.answer,
        reasoning=outcome.reasoning,
        method=method,
        candidates=outcome.candidates,
        usage=budget.ledger.to_dict(),
        prompt_versions=context.prompt_versions,
        stopped_by=stopped_by,
        graph=context.graph,
    )


def solve(problem: str, method: str = "cot", backend: str | Backend = DEFAULT_BACKEND, **kwargs: Any) -> Solution:
    """Blocking :func:`solve_async`. Inside a running event loop (a Jupyter notebook) the run gets an event
    loop of its own on a worker thread, so ``solve(...)`` works there too (``await solve_async(...)`` is the
    way to share the notebook's loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(solve_async(problem, method, backend, **kwargs))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="solve") as worker:
        return worker.submit(asyncio.run, solve_async(problem, method, backend, **kwargs)).result()


async def thoughts_then_result(run: Callable[[ThoughtListener], Awaitable[T]]) -> AsyncIterator[ThoughtNode | T]:
    """Start ``run(on_thought)`` and yield each thought as it is produced, then the run's result. Closing
    the iterator early (a client that went away) cancels the run."""
    queue: asyncio.Queue[ThoughtNode] = asyncio.Queue()
    task = asyncio.ensure_future(run(queue.put_nowait))
    try:
        while not (task.done() and queue.empty()):
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
            else:
                getter.cancel()
        yield task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def stream_thoughts(
    problem: str, method: str = "cot", backend: str | Backend = DEFAULT_BACKEND, **kwargs: Any
) -> AsyncIterator[ThoughtNode | Solution]:
    """Yield each thought as the method produces it, then the Solution."""
    async for item in thoughts_then_result(
        lambda on_thought: solve_async(problem, method, backend, on_thought=on_thought, **kwargs)
    ):
        yield item
