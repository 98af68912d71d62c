"""The Python entry point: ``solve(problem, method="cot", backend="llamacpp:smollm2")``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import fields
from typing import Any

from backends import DEFAULT_BACKEND, Backend, create_backend
from reasoning.cot import CoTConfig, chain_of_thought
from reasoning.solution import Solution

MethodRunner = Callable[[str, Backend, Any], Awaitable[Solution]]

# method name -> (config type, runner); new methods register here.
METHODS: dict[str, tuple[type, MethodRunner]] = {
    "cot": (CoTConfig, chain_of_thought),
}


def make_config(method: str, **options: Any) -> Any:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; available: {', '.join(METHODS)}")
    config_type = METHODS[method][0]
    known = {f.name for f in fields(config_type)}
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"method {method!r} has no option(s) {sorted(unknown)}; it has {sorted(known)}")
    return config_type(**options)


async def solve_async(
    problem: str,
    method: str = "cot",
    backend: str | Backend = DEFAULT_BACKEND,
    *,
    seed: int = 0,
    **config: Any,
) -> Solution:
    if not isinstance(problem, str) or not problem.strip():
        raise ValueError("the problem is empty: give a question to solve")
    settings = make_config(method, **config)
    engine = create_backend(backend)
    runner = METHODS[method][1]
    return await runner(problem.strip(), engine, settings, seed=seed)


def solve(problem: str, method: str = "cot", backend: str | Backend = DEFAULT_BACKEND, **kwargs: Any) -> Solution:
    """Blocking :func:`solve_async`."""
    return asyncio.run(solve_async(problem, method, backend, **kwargs))
