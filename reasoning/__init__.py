"""Reasoning methods over the shared backend layer. ``solve(problem, method=..., backend=...)``."""

from reasoning.api import METHODS, solve, solve_async, stream_thoughts
from reasoning.solution import Solution

__all__ = ["METHODS", "Solution", "solve", "solve_async", "stream_thoughts"]
